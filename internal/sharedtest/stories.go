package sharedtest

// StoriesGreedy is llama2.c test_all.py's expected output of
// `run stories260K.bin -z tok512.bin -t 0.0 -n 200`: the text of greedy
// decoding of ../shared/teachers/seq's stories260K from BOS for 200 tokens
// (its README: byte for byte what the ONNX teachers give, and
// encode(decode(ids)) == ids with tok512, BOS + 200 ids).
const StoriesGreedy = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. " +
	"One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, " +
	`"Lily, let's go to the park." Lily was sad and didn't know what to do. She said, "I want to play with ` +
	`your ball, but I can't find it."` + "\nLily was sad and didn't know what to do. She said, \"I'm sorry, Lily. " +
	"I didn't know what to do.\"\nLily didn't want to help her mom, so she"
