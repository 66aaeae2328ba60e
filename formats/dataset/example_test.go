package dataset_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/distill-ml/distill/formats/dataset"
)

// Open a CSV dataset with a label column and read it in chunks, as extract
// does.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "dataset-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "points.csv")
	csv := "x,y,label\n0.5,1,0\n2,3.5,1\n-1,0,1\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		log.Fatal(err)
	}

	d, err := dataset.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	fmt.Println(d.Len(), "rows; columns:", d.Columns())
	for b, err := range dataset.All(d, 0, 2) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(b.Rows, b.Cols["input"], b.Labels)
	}
	// Output:
	// 3 rows; columns: [{input float32 [2]}]
	// [0 1] [0.5 1 2 3.5] [0 1]
	// [2] [-1 0] [1]
}
