package train

import (
	"fmt"
	"math"
)

// Learning-rate schedules.
const (
	ScheduleConstant = "constant"
	ScheduleCosine   = "cosine"
)

// ScheduleLR returns the learning rate of step (0-based) out of total
// steps: a linear warmup over the first warmup steps,
//
//	lr·(step+1)/warmup                         step < warmup
//
// then lr (constant) or cosine annealing to 0 over the remaining steps
// (torch.optim.lr_scheduler.CosineAnnealingLR with η_min = 0):
//
//	lr·½·(1 + cos(π·(step − warmup)/(total − warmup)))
func ScheduleLR(schedule string, lr float64, step, total, warmup int64) float64 {
	if step < warmup {
		return lr * float64(step+1) / float64(warmup)
	}
	if schedule != ScheduleCosine || total <= warmup {
		return lr
	}
	frac := float64(step-warmup) / float64(total-warmup)
	return lr * 0.5 * (1 + math.Cos(math.Pi*min(frac, 1)))
}

func checkSchedule(s string) error {
	if s != ScheduleConstant && s != ScheduleCosine {
		return fmt.Errorf("train: unknown schedule %q, want constant or cosine", s)
	}
	return nil
}
