// Package train trains a pure-Go student model against a teacher-output
// cache (package formats) with output and feature distillation, and writes
// PyTorch-compatible checkpoints.
//
// # Sections
//
//   - Layers: Layer, Stochastic, Mat, Param, Params; Linear, LayerNorm,
//     ActivationLayer (Activation: ReLU, GELU, Tanh, Identity), Dropout,
//     Standardize; for convolutional students Conv2d (stride, padding,
//     dilation, groups), Pool2d (max, average; NewGlobalAvgPool),
//     BatchNorm2d, ReLU6, Sequential.
//   - Students: Config, Student (an MLP, or a CNN of NewCNN's spec
//     grammar and CNNPresets: Config.Type "cnn", Arch; its BatchNorm
//     statistics are Student.Buffers), ParseLayer, ParseFeature,
//     ParseCNNFeature, ParseActivation.
//   - Losses: KD (softmax KL at temperature T plus cross-entropy, with the
//     top-k "rest" bucket), FeatureLoss (MSE, Cosine; AT, attention
//     transfer between a cnn's maps), Targets;
//     AttentionLoss (MiniLM's KL, TinyBERT's MSE) for TrainLM's
//     AttentionPair (ParseAttentionPair).
//   - Optimization: Optimizer, AdamWOptimizer, SGDOptimizer, ScheduleLR.
//   - Data: Source (satisfied by *formats.Cache), DatasetSource
//     (NewDatasetSource), Ensemble (NewEnsemble, EnsembleOptions,
//     EnsembleMode: several teachers' caches joined by row),
//     ComputeMoments, Moments, ErrNoInput, ErrDatasetMismatch.
//   - Training: Options, FeaturePair, Train, Result, Step, Epoch,
//     EpochMetrics, NonFiniteError.
//   - Evaluation: Metrics, Evaluate.
//   - Checkpoints: Checkpoint, CheckpointInfo, FileDigest, Provenance
//     (EnsembleProvenance, EnsembleTeacher), WriteCheckpoint, Load, LoadFS, Exists, WriteSafetensors,
//     ReadSafetensors, ErrCheckpoint, ErrLocked; a transformer student's
//     (TrainLM): LMCheckpoint, LMCheckpointInfo, LoadLMCheckpoint,
//     TrainingFile; at s3:// and gs:// locations: PointerFile,
//     CheckpointPointer, CurrentSave, FetchCheckpoint (remote.go).
//   - Threads: SetThreads, Threads.
//
// # Shapes and numerics
//
// A batch is a Mat of n rows (samples) by the per-sample width. Weights are
// [out, in] as PyTorch keeps them, and every matrix product goes through
// one function, sgemm (package train/gemm): Y = X·Wᵀ, dX = dY·W,
// dW = dYᵀ·X. Values are float32; loss reductions accumulate in float64.
// Once its buffers have reached the batch size a step allocates nothing
// in this package (with several threads, gemm's goroutines may).
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
// # Data
//
// Train (and TrainLM, whose rows are windows of tokens) streams batches
// from a Source in bounded memory: each epoch it
// shuffles the order of the cache's units (record batches), reads them a
// window of a few units at a time (the next window prefetched by a
// goroutine), shuffles the rows within the window and gathers them into
// batches. If the whole cache fits in Options.WindowBytes (256 MiB), its
// units are read once, keeping only the columns training uses, and the
// window is the whole cache. The inputs come from the cache's input.*
// columns (extract --keep-input) or, for a cache extracted without them,
// from the dataset its manifest names: NewDatasetSource reads the rows of
// each cache unit from the dataset (checked by sha256) and preprocesses
// them as extract fed them to the teacher (for a per-token cache: the
// first T of each window of T+1 token ids).
//
// # Checkpoints
//
// config.json records the size and sha256 of the other files, and Load
// checks them and refuses NaN or ±Inf weights, so export, evaluation and
// resume never use a damaged checkpoint silently (checkpoints written
// before the digests load unchecked). A failed write leaves the previous
// checkpoint and no staging directory. Train holds a lock on .NAME.lock
// beside the checkpoint while it runs, so a second run into the same Out
// fails at once with ErrLocked (see WriteCheckpoint for the layout).
//
// # Speed
//
// Measured on the project's 2-core AVX-512 machine (shared, so noisy),
// batch 128, α = 0.9, T = 4, AdamW, 2 threads, a 20k-row synthetic cache of
// 784 inputs (BenchmarkTrain; data loading included, evaluation not), next
// to the PyTorch peer (../shared/peers, tuned OpenBLAS, data in memory):
//
//	student                               distill train    PyTorch 1.13
//	784-128-10                            ≈200k samples/s  ≈73k
//	784-800-800-10                        ≈24k             ≈10.5k
//	784-800-800-10 GELU+LayerNorm+dropout ≈10k             —
//
// Matrix products take most of the time; AdamW and the bias/ReLU passes
// run as AVX2 kernels (simd_amd64.s) split over the threads.
//
// The CNN students of the peer's presets, distill train --student cnn on
// the MNIST teacher cache against torch_kd_train.py --arch cnn:PRESET
// (make bench section 10, 2 epochs, 2 interleaved repetitions, the peer
// with OMP_WAIT_POLICY=PASSIVE, load average 4–6 on the 2 cores):
//
//	student  distill train   PyTorch 1.13   ratio
//	tiny     ≈8.0k samples/s ≈4.4k          1.79×
//	dws      ≈2.3k           ≈1.4k          1.66×
//	lenet5   ≈16.5k          ≈10.1k         1.65×
//
// Convolutions split the batch over the threads (Conv2d), BatchNorm2d its
// channels, pooling its samples; the elementwise passes are AVX2 kernels
// (convkern_amd64.s). BenchmarkCNNStep measures one step of each.
//
// # Example
//
//	c, err := formats.Open("cache")
//	...
//	res, err := train.Train(ctx, train.Config{Hidden: []int{800, 800}}, c, &train.Options{
//		Epochs: 10, Temperature: 4, Alpha: 0.9, Out: "student.ckpt",
//	})
package train
