// Package train trains a pure-Go student model against a teacher-output
// cache (package formats) with output and feature distillation, and writes
// PyTorch-compatible checkpoints.
//
// # Sections
//
//   - Layers: Layer, Mat, Param, Params; Linear, LayerNorm, ActivationLayer
//     (Activation: ReLU, GELU, Tanh), Dropout, Standardize.
//   - Students: Config, Student (an MLP), ParseLayer.
//   - Losses: KD (softmax KL at temperature T plus cross-entropy, with the
//     top-k "rest" bucket), FeatureLoss (MSE, Cosine), Targets.
//   - Optimization: Optimizer, AdamWOptimizer, SGDOptimizer, ScheduleLR.
//   - Data: Source (satisfied by *formats.Cache), ComputeMoments, Moments.
//   - Training: Options, Train, Step, Epoch, EpochMetrics, NonFiniteError.
//   - Evaluation: Metrics, Evaluate.
//   - Checkpoints: Checkpoint, CheckpointInfo, WriteCheckpoint, Load,
//     LoadFS, WriteSafetensors, ReadSafetensors.
//   - Threads: SetThreads.
//
// # Shapes and numerics
//
// A batch is a Mat of n rows (samples) by the per-sample width. Weights are
// [out, in] as PyTorch keeps them, and every matrix product goes through
// one function, sgemm (package train/gemm): Y = X·Wᵀ, dX = dY·W,
// dW = dYᵀ·X. Values are float32; loss reductions accumulate in float64.
// A step allocates nothing once the buffers have reached the batch size.
//
// # Determinism
//
// Initialization uses rand.NewPCG(seed, "init"); epoch e shuffles with
// rand.NewPCG(seed, e<<8|1) and draws dropout masks from
// rand.NewPCG(seed, e<<8|2). A checkpoint is written at the end of every
// epoch, so resuming needs nothing but the epoch: with the same thread
// count a resumed run is bit-identical to an uninterrupted one, and the
// same seed, data, options and thread count give the same checkpoint
// bytes. Matrix products may round differently for different thread
// counts.
//
// # Example
//
//	c, err := formats.Open("cache")
//	...
//	res, err := train.Train(ctx, train.Config{Hidden: []int{800, 800}}, c, &train.Options{
//		Epochs: 10, Temperature: 4, Alpha: 0.9, Out: "student.ckpt",
//	})
package train
