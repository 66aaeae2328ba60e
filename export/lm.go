package export

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/distill-ml/distill/internal/onnxpb"
	"github.com/distill-ml/distill/train"
	"google.golang.org/protobuf/proto"
)

// Names and dimensions of an exported language model (MarshalLM), those
// of Hugging Face Optimum and onnxruntime-genai decoders with past.
const (
	InputIDsName      = "input_ids"      // int64 [batch_size, sequence_length]
	AttentionMaskName = "attention_mask" // int64 [batch_size, total_sequence_length], KV form only
	PositionIDsName   = "position_ids"   // int64 [batch_size, sequence_length], KV form only
	// Name patterns (fmt verbs: the layer) of the cache inputs and
	// outputs, float32 [batch_size, kv_heads, past|total_sequence_length, head_dim].
	PastKeyNames      = "past_key_values.%d.key"
	PastValueNames    = "past_key_values.%d.value"
	PresentKeyNames   = "present.%d.key"
	PresentValueNames = "present.%d.value"
	// KVCacheLayout describes the cache tensors (metadata kv_cache_layout).
	KVCacheLayout = "[batch, num_key_value_heads, seq, head_dim]; keys after RoPE"
)

// MinLMOpset is the oldest opset MarshalLM writes: Unsqueeze and ReduceSum
// with their axes as inputs, LessOrEqual.
const MinLMOpset = 13

// maskedScore is the score of a key a query must not see: large and
// negative but finite, so that a row with every key masked (a pad
// position) softmaxes to finite values instead of NaN.
const maskedScore = -1e9

// LMOptions configure MarshalLM and WriteLMDir.
type LMOptions struct {
	// Options: Opset (MinLMOpset..MaxOpset), Dtype, Quantize and
	// ToolVersion as for an MLP student; Probs is not supported. Quantize
	// Int8 is weight-only for a transformer: see MarshalLM.
	Options
	// NoCache writes the plain full-sequence form, input_ids → logits,
	// instead of the decoder with past.
	NoCache bool
	// BOS and EOS are the tokenizer's begin- and end-of-sequence ids,
	// recorded in the metadata and the configs; nil when unknown (a
	// tokenizer without one).
	BOS, EOS *int
	// Tokenizer and TokenizerSHA256 name the tokenizer file (its base
	// name) and its sha256 for the metadata; WriteLMDir sets them from the
	// file it copies.
	Tokenizer, TokenizerSHA256 string
}

func (o *LMOptions) resolve() (LMOptions, error) {
	var r LMOptions
	if o != nil {
		r = *o
	}
	if r.Probs {
		return r, fmt.Errorf("%w: probs for a language model: its logits are [batch, sequence, vocab]; apply softmax yourself", ErrUnsupported)
	}
	opts, err := r.Options.resolve()
	if err != nil {
		return r, err
	}
	if opts.Opset < MinLMOpset {
		return r, fmt.Errorf("%w: opset %d for a transformer: distill writes language models at opsets %d to %d", ErrUnsupported, opts.Opset, MinLMOpset, MaxOpset)
	}
	r.Options = opts
	return r, nil
}

// TransformerOf returns the model of a transformer checkpoint with its
// weights set.
func TransformerOf(c *train.LMCheckpoint) (*train.Transformer, error) {
	m, err := train.NewTransformer(c.Info.Student)
	if err != nil {
		return nil, err
	}
	train.NewParams(m.Params()...)
	if err := m.SetTensors(c.Tensors); err != nil {
		return nil, err
	}
	return m, nil
}

// MarshalLM returns the ONNX model of the transformer m; info (may be nil)
// is its checkpoint's record, for the provenance metadata. The graph is
// m's inference forward (train.Transformer.Forward), in the Hugging Face
// layout of the decoder with past by default:
//
//	inputs  input_ids       int64 [batch_size, sequence_length]
//	        attention_mask  int64 [batch_size, total_sequence_length]   1 = attend, 0 = padding
//	        position_ids    int64 [batch_size, sequence_length]         0 ≤ position < Cfg.T
//	        past_key_values.{l}.key|value  float32 [batch_size, KVHeads, past_sequence_length, HeadDim]
//	outputs logits          float32 [batch_size, sequence_length, Vocab]
//	        present.{l}.key|value          float32 [batch_size, KVHeads, total_sequence_length, HeadDim]
//
// present = the past with this call's keys (after RoPE) and values
// appended on axis 2; a past of length 0 starts a sequence. Query t of a
// call (cache slot past + t) sees slot j iff j ≤ past + t and
// attention_mask[b, j] ≠ 0; other scores are set to −1e9, so a pad
// position's logits are finite and meaningless. With NoCache the model is
// input_ids → logits over whole sequences (positions 0..sequence_length−1,
// causal).
//
// The graph avoids run-time shape arithmetic (per-operator overhead
// dominates small models): the projections are stored per head,
// Wq [KVHeads, Heads/KVHeads, Dim, HeadDim], Wk and Wv [KVHeads, Dim,
// HeadDim], Wo [KVHeads, Heads/KVHeads, HeadDim, Dim], the MLP's transposed,
// and broadcasting MatMuls compute every head at once; grouped-query
// attention reads each KV head from its group's query heads without
// copying it; RoPE is x·C + (x·R)·S with C, S gathered by position and R
// the rotate_half matrix, and 1/√HeadDim is folded into the queries' C
// and S. Per layer (RMSNorm, SwiGLU, RoPE):
//
//	a  = x / Sqrt(ReduceMean(Pow(x, 2)) + ε) · γ
//	q  = rope(MatMul(a[:,None,None], Wq))           [B, KV, G, S, hd]
//	k  = rope(MatMul(a[:,None], Wk)), v = MatMul(a[:,None], Wv)   [B, KV, S, hd]
//	present = Concat(past, k|v, axis 2)
//	p  = Softmax(MatMul(q, presentₖᵀ[:,:,None]) + bias)   [B, KV, G, S, total]
//	x += ReduceSum(MatMul(MatMul(p, presentᵥ[:,:,None]), Wo), axes 1, 2)
//	m  = norm(x); x += MatMul(silu(MatMul(m, W_g))·MatMul(m, W_u), W_d)
//
// logits = MatMul(norm(x), Headᵀ). LayerNorm is LayerNormalization,
// GELU (tanh form) the Gelu op from opset 20 and written out below;
// learned positions add Gather(P, position_ids) to the embedding.
//
// Dtype F16 stores every weight matrix (embedding, positions,
// projections, head) as float16 and casts it to float32 in the graph;
// Quantize Int8 stores the embedding (and head) and the projections as
// int8 per output channel, symmetric (QuantizeWeights' rounding), with
// float32 scales, dequantized in the graph (Cast, Mul): weight-only
// quantization, about a quarter of the size, computed in float32 once a
// runtime folds the constants (onnxruntime does at load). Any runtime
// with Cast and Mul runs it; unlike an MLP student's, no
// DynamicQuantizeLinear/MatMulInteger is used, because the per-head
// broadcasting MatMuls have no integer form in ONNX and 8-bit
// activations of the residual stream would cost far more accuracy.
// Norm gains and biases, the RoPE tables and (Int8) the position table
// stay float32.
func MarshalLM(m *train.Transformer, info *train.LMCheckpointInfo, opts *LMOptions) ([]byte, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	mp, err := buildLM(m, info, o)
	if err != nil {
		return nil, err
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(mp)
	if err != nil {
		return nil, fmt.Errorf("export: encode: %w", err)
	}
	return data, nil
}

// Symbolic dimensions of the LM inputs and outputs.
const (
	dimBatch = "batch_size"
	dimSeq   = "sequence_length"
	dimTotal = "total_sequence_length"
	dimPast  = "past_sequence_length"
)

// lmValueInfo declares a tensor whose dims are ints or dim_param names.
func lmValueInfo(name string, dt onnxpb.TensorProto_DataType, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case string:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
		case int:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(dt)), Shape: shape,
		}}},
	}
}

func buildLM(m *train.Transformer, info *train.LMCheckpointInfo, o LMOptions) (*onnxpb.ModelProto, error) {
	if m == nil {
		return nil, fmt.Errorf("export: no transformer")
	}
	c := m.Cfg
	D, hd, V, F := c.Dim, c.HeadDim(), c.Vocab, c.FFN
	KV, G := c.KVHeads, c.Heads/c.KVHeads
	b := &lmBuilder{builder: &builder{graph: newGraph(o.Opset), o: o.Options, consts: map[float32]string{}}, m: m, cache: !o.NoCache, ints: map[string]string{}}
	var inputs, outputs []*onnxpb.ValueInfoProto
	fl, i64 := onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT64
	inputs = append(inputs, lmValueInfo(InputIDsName, i64, dimBatch, dimSeq))
	if b.cache {
		inputs = append(inputs, lmValueInfo(AttentionMaskName, i64, dimBatch, dimTotal), lmValueInfo(PositionIDsName, i64, dimBatch, dimSeq))
		for l := range c.Layers {
			inputs = append(inputs, lmValueInfo(fmt.Sprintf(PastKeyNames, l), fl, dimBatch, KV, dimPast, hd),
				lmValueInfo(fmt.Sprintf(PastValueNames, l), fl, dimBatch, KV, dimPast, hd))
		}
	}
	outputs = append(outputs, lmValueInfo(LogitsName, fl, dimBatch, dimSeq, V))
	for _, v := range append(inputs, outputs...) {
		b.used[v.GetName()] = true
	}
	if b.cache {
		for l := range c.Layers {
			k, v := fmt.Sprintf(PresentKeyNames, l), fmt.Sprintf(PresentValueNames, l)
			b.used[k], b.used[v] = true, true
			outputs = append(outputs, lmValueInfo(k, fl, dimBatch, KV, dimTotal, hd), lmValueInfo(v, fl, dimBatch, KV, dimTotal, hd))
		}
	}

	// Sizes at run time: S new tokens, P past ones; the positions.
	S := b.op("shape", "Gather", "", []string{b.op("shape", "Shape", "", []string{InputIDsName}), b.scalarInt(1)}, attrInt("axis", 0))
	zero, one := b.scalarInt(0), b.scalarInt(1)
	qslot := b.op("mask", "Range", "", []string{zero, S, one}) // [S]
	kslot := qslot
	pos := qslot // no cache: positions 0..S−1
	if b.cache {
		pastShape := b.op("shape", "Shape", "", []string{fmt.Sprintf(PastKeyNames, 0)})
		P := b.op("shape", "Gather", "", []string{pastShape, b.scalarInt(2)}, attrInt("axis", 0))
		qslot = b.op("mask", "Add", "", []string{qslot, P})
		kslot = b.op("mask", "Range", "", []string{zero, b.op("mask", "Add", "", []string{P, S}), one}) // [total]
		pos = PositionIDsName
	}
	// bias[.., t, j] = 0 if query t may see slot j, else maskedScore.
	ok := b.op("mask", "LessOrEqual", "", []string{b.unsqueeze("mask", kslot, 0), b.unsqueeze("mask", qslot, 1)}) // [S, total]
	if b.cache {
		am := b.op("mask", "Cast", "", []string{AttentionMaskName}, attrInt("to", int64(onnxpb.TensorProto_BOOL)))
		ok = b.op("mask", "And", "", []string{ok, b.unsqueeze("mask", am, 1)}) // [B, S, total]
	}
	bias := b.op("mask", "Where", "", []string{ok, b.constant("zero", 0), b.constant("masked", maskedScore)})
	if b.cache {
		bias = b.unsqueeze("mask", bias, 1, 2) // [B, 1, 1, S, total]
	}

	scale := b.constant("attn_scale", float32(1/math.Sqrt(float64(hd))))
	embed, err := b.weight(matrix{name: m.Embed.Name, w: m.Embed.Data, out: V, in: D, dims: []int64{int64(V), int64(D)}, scale: []int64{int64(V), 1}})
	if err != nil {
		return nil, err
	}
	x := b.op("model.embed_tokens", "Gather", "", []string{embed, InputIDsName}, attrInt("axis", 0)) // [B, S, D]
	var cq, sq, ck, sk string
	if m.Pos != nil {
		p, err := b.weight(matrix{name: m.Pos.Name, w: m.Pos.Data, out: c.T, in: D, dims: []int64{int64(c.T), int64(D)}, float: true})
		if err != nil {
			return nil, err
		}
		x = b.op("model.embed_positions", "Add", "", []string{x, b.op("model.embed_positions", "Gather", "", []string{p, pos}, attrInt("axis", 0))})
	} else {
		cos, sin := ropeTables(c)
		dims := []int64{int64(c.T), int64(hd)}
		b.rot = b.float32s("rope.rotate_half", []int64{int64(hd), int64(hd)}, rotateHalf(hd))
		ck = b.op("rope", "Gather", "", []string{b.float32s("rope.cos", dims, cos), pos}, attrInt("axis", 0))
		sk = b.op("rope", "Gather", "", []string{b.float32s("rope.sin", dims, sin), pos}, attrInt("axis", 0))
		cq, sq = b.op("rope", "Mul", "", []string{ck, scale}), b.op("rope", "Mul", "", []string{sk, scale})
		if b.cache { // [B, S, hd] → [B, 1, 1, S, hd] for q, [B, 1, S, hd] for k
			cq, sq = b.unsqueeze("rope", cq, 1, 2), b.unsqueeze("rope", sq, 1, 2)
			ck, sk = b.unsqueeze("rope", ck, 1), b.unsqueeze("rope", sk, 1)
		}
	}

	for l, blk := range m.Blocks {
		p := fmt.Sprintf("model.layers.%d.", l)
		attn := p + "self_attn"
		w := func(pr *train.Param, out, in, heads int, dims, scale []int64) (string, error) {
			return b.weight(matrix{name: pr.Name, w: pr.Data, out: out, in: in, perm: headsT(out, in, heads), dims: dims, scale: scale})
		}
		wq, err := w(blk.Wq, c.Heads*hd, D, c.Heads, []int64{int64(KV), int64(G), int64(D), int64(hd)}, []int64{int64(KV), int64(G), 1, int64(hd)})
		if err != nil {
			return nil, err
		}
		wk, err := w(blk.Wk, KV*hd, D, KV, []int64{int64(KV), int64(D), int64(hd)}, []int64{int64(KV), 1, int64(hd)})
		if err != nil {
			return nil, err
		}
		wv, err := w(blk.Wv, KV*hd, D, KV, []int64{int64(KV), int64(D), int64(hd)}, []int64{int64(KV), 1, int64(hd)})
		if err != nil {
			return nil, err
		}
		wo, err := w(blk.Wo, D, c.Heads*hd, 1, []int64{int64(KV), int64(G), int64(hd), int64(D)}, []int64{int64(D)})
		if err != nil {
			return nil, err
		}
		a, err := b.norm(p+"input_layernorm", x, blk.AttnNorm)
		if err != nil {
			return nil, err
		}
		a4 := b.unsqueeze(attn, a, 1)                             // [B, 1, S, D]
		a5 := b.unsqueeze(attn, a4, 1)                            // [B, 1, 1, S, D]
		q := b.op(attn+"/q_proj", "MatMul", "", []string{a5, wq}) // [B, KV, G, S, hd]
		k := b.op(attn+"/k_proj", "MatMul", "", []string{a4, wk}) // [B, KV, S, hd]
		v := b.op(attn+"/v_proj", "MatMul", "", []string{a4, wv})
		if m.Pos == nil {
			q = b.rope(attn+"/q_rope", q, cq, sq)
			k = b.rope(attn+"/k_rope", k, ck, sk)
		} else {
			q = b.op(attn, "Mul", "", []string{q, scale})
		}
		if b.cache {
			k = b.op(attn, "Concat", fmt.Sprintf(PresentKeyNames, l), []string{fmt.Sprintf(PastKeyNames, l), k}, attrInt("axis", 2))
			v = b.op(attn, "Concat", fmt.Sprintf(PresentValueNames, l), []string{fmt.Sprintf(PastValueNames, l), v}, attrInt("axis", 2))
		}
		// [B, KV, 1, hd, total]: a Transpose right before the MatMul, which
		// onnxruntime fuses into it (FusedMatMul, transB).
		kt := b.op(attn, "Transpose", "", []string{b.unsqueeze(attn, k, 2)}, attrInts("perm", 0, 1, 2, 4, 3))
		s := b.op(attn, "MatMul", "", []string{q, kt}) // [B, KV, G, S, total]
		s = b.op(attn, "Add", "", []string{s, bias})
		s = b.op(attn, "Softmax", "", []string{s}, attrInt("axis", -1))
		ctx := b.op(attn, "MatMul", "", []string{s, b.unsqueeze(attn, v, 2)}) // [B, KV, G, S, hd]
		y := b.op(attn+"/o_proj", "MatMul", "", []string{ctx, wo})            // [B, KV, G, S, D]
		y = b.op(attn+"/o_proj", "ReduceSum", "", []string{y, b.axes(1, 2)}, attrInt("keepdims", 0))
		x = b.op(p+"residual", "Add", "", []string{x, y})

		mn, err := b.norm(p+"post_attention_layernorm", x, blk.MLPNorm)
		if err != nil {
			return nil, err
		}
		mlp := p + "mlp"
		wu, err := w(blk.Wu, F, D, 1, []int64{int64(D), int64(F)}, []int64{int64(F)})
		if err != nil {
			return nil, err
		}
		wd, err := w(blk.Wd, D, F, 1, []int64{int64(F), int64(D)}, []int64{int64(D)})
		if err != nil {
			return nil, err
		}
		u := b.op(mlp+"/up_proj", "MatMul", "", []string{mn, wu})
		var h string
		if blk.Wg != nil {
			wg, err := w(blk.Wg, F, D, 1, []int64{int64(D), int64(F)}, []int64{int64(F)})
			if err != nil {
				return nil, err
			}
			g := b.op(mlp+"/gate_proj", "MatMul", "", []string{mn, wg})
			h = b.op(mlp+"/act", "Mul", "", []string{g, b.op(mlp+"/act", "Sigmoid", "", []string{g})})
			h = b.op(mlp+"/act", "Mul", "", []string{h, u})
		} else {
			h = b.geluTanh(mlp+"/act", u)
		}
		y = b.op(mlp+"/down_proj", "MatMul", "", []string{h, wd})
		x = b.op(p+"residual", "Add", "", []string{x, y})
	}
	hn, err := b.norm("model.norm", x, m.Norm)
	if err != nil {
		return nil, err
	}
	var head string
	if c.Untied {
		if head, err = b.weight(matrix{name: m.Head.Name, w: m.Head.Data, out: V, in: D, perm: headsT(V, D, 1),
			dims: []int64{int64(D), int64(V)}, scale: []int64{int64(V)}}); err != nil {
			return nil, err
		}
	} else {
		head = b.op("lm_head", "Transpose", "", []string{embed}, attrInts("perm", 1, 0)) // a constant, folded at load
	}
	b.op("lm_head", "MatMul", LogitsName, []string{hn, head})

	return b.model(o.Options, describeLM(c, o), inputs, outputs, lmMetadata(m, info, o)), nil
}

// describeLM is the doc_string, e.g. "distill transformer: llama, 2 layers,
// dim 32, 4/2 heads, ffn 64, vocab 512, 64 positions; decoder with past;
// weights f32".
func describeLM(c train.TransformerConfig, o LMOptions) string {
	form := "decoder with past (KV cache)"
	if o.NoCache {
		form = "full sequence, no cache"
	}
	w := "weights " + o.Dtype
	if o.Quantize != "" {
		w = "weights " + o.Quantize + " (weight-only, per output channel)"
	}
	return fmt.Sprintf("distill transformer: %s, %d layers, dim %d, %d/%d heads, ffn %d, vocab %d, %d positions, tied %v; %s; %s",
		c.Variant(), c.Layers, c.Dim, c.Heads, c.KVHeads, c.FFN, c.Vocab, c.T, !c.Untied, form, w)
}

// Metadata keys of a language model, beside the Meta* provenance keys:
// Hugging Face config names, as the Optimum exports and stories260K-kv.onnx
// carry them.
const (
	MetaModelType = "model_type" // "llama" or "distill_decoder" (other options)
	MetaKVLayout  = "kv_cache_layout"
)

// lmMetadata returns the entries, sorted by key.
func lmMetadata(m *train.Transformer, info *train.LMCheckpointInfo, o LMOptions) []*onnxpb.StringStringEntryProto {
	c := m.Cfg
	itoa := strconv.Itoa
	kv := map[string]string{
		MetaModelType: "llama", "num_hidden_layers": itoa(c.Layers), "num_attention_heads": itoa(c.Heads),
		"num_key_value_heads": itoa(c.KVHeads), "head_dim": itoa(c.HeadDim()), "hidden_size": itoa(c.Dim),
		"intermediate_size": itoa(c.FFN), "vocab_size": itoa(c.Vocab), "max_position_embeddings": itoa(c.T),
		"tie_word_embeddings": strconv.FormatBool(!c.Untied),
		"norm_type":           c.Norm, "mlp_type": c.MLP, "position_embedding_type": c.Pos,
	}
	if !c.Llama() {
		kv[MetaModelType] = "distill_decoder"
	}
	if c.Norm == train.NormRMS {
		kv["rms_norm_eps"] = strconv.FormatFloat(train.RMSNormEps, 'g', -1, 64)
	} else {
		kv["layer_norm_eps"] = strconv.FormatFloat(train.LayerNormEps, 'g', -1, 64)
	}
	if c.Pos == train.PosRoPE {
		kv["rope_theta"] = strconv.FormatFloat(c.RoPETheta, 'f', -1, 64)
		kv["rope_layout"] = "rotate_half (dimension i pairs with i + head_dim/2, Hugging Face Llama)"
	}
	if !o.NoCache {
		kv[MetaKVLayout] = KVCacheLayout
		kv["past_key_names"], kv["past_value_names"] = PastKeyNames, PastValueNames
		kv["present_key_names"], kv["present_value_names"] = PresentKeyNames, PresentValueNames
	}
	if o.BOS != nil {
		kv["bos_token_id"] = itoa(*o.BOS)
	}
	if o.EOS != nil {
		kv["eos_token_id"] = itoa(*o.EOS)
	}
	if o.Tokenizer != "" {
		kv["tokenizer"], kv["tokenizer_sha256"] = o.Tokenizer, o.TokenizerSHA256
	}
	exportMeta(kv, o.Options, c)
	if info != nil {
		var last any
		if len(info.Epochs) > 0 {
			last = info.Epochs[len(info.Epochs)-1]
		}
		trainingMeta(kv, info.Training, info.Epoch, info.Step, info.Cache, info.Val, last)
	}
	return sortedProps(kv)
}

// sortedProps returns kv as metadata entries sorted by key.
func sortedProps(kv map[string]string) []*onnxpb.StringStringEntryProto {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	props := make([]*onnxpb.StringStringEntryProto, len(keys))
	for i, k := range keys {
		props[i] = &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(kv[k])}
	}
	return props
}
