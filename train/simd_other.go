//go:build !amd64 || purego

package train

func adamw(w, g, m, v []float32, k *adamConsts) { adamwGo(w, g, m, v, k) }
func biasReLU(y, b []float32)                   { biasReLUGo(y, b) }
func biasAdd(y, b []float32)                    { biasAddGo(y, b) }
func reluBackSum(d, y, db []float32)            { reluBackSumGo(d, y, db) }
func addTo(db, d []float32)                     { addToGo(db, d) }
