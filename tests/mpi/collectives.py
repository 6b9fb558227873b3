"""rank/size, broadcast_weights, one known gradient allreduce, shard, evaluate, predict.

Usage: mpiexec -n 2 python collectives.py OUT_DIR
"""

import sys

import common
import numpy as np

from fastconv import distributed as dist
from fastconv import optimizers

out_dir = sys.argv[1]
dist.init(num_threads=1)
r, p = dist.rank(), dist.size()

# Different seeds give different weights on each rank until the broadcast.
model = common.build_model(seed=100 + r)
before = [w.copy() for w in model.get_weights()]
dist.broadcast_weights(model, root=0)
after = model.get_weights()

# Known gradients: rank r sends (r + 1) * [1, 2, ..., 6] for a parameter of zeros.
# With equal weights the average is 1.5 * [1..6] for 2 ranks; one SGD step with lr 1
# leaves the parameter at minus that average.
param = [np.zeros(6, np.float32), np.zeros((2, 2), np.float32)]
grad = [(r + 1) * np.arange(1, 7, dtype=np.float32),
        np.full((2, 2), 10.0 * (r + 1), np.float32)]
opt = dist.DistributedOptimizer(optimizers.SGD(1.0))
opt.apply(param, grad)

# Weighted by sample counts: rank 0 has 3 samples of gradient 1, rank 1 one of gradient 5.
weighted = [np.zeros(3, np.float32)]
count = 3 if r == 0 else 1
loss = dist.DistributedOptimizer(optimizers.SGD(1.0)).apply_step(
    weighted, [np.full(3, 1.0 if r == 0 else 5.0, np.float32)], count, 2.0 + r)

x_idx = np.arange(7)
shard_x, shard_y = dist.shard(x_idx, x_idx * 10)

# evaluate/predict on shards of the test data: 24 of the 25 samples divide evenly; all
# 25 are padded to 26 by repeating sample 0 on rank 1.
x, y = common.data()
xs, ys = dist.shard(x[:24], y[:24])
ev = model.evaluate(xs, ys, verbose=0, return_dict=True)
pred = model.predict(xs)
pred_padded = model.predict(dist.shard(x))
dropped = dist.shard(x, drop_last=True)

common.dump(out_dir, r, after,
            rank=r, size=p, root=dist.is_root(),
            before=[float(w.sum()) for w in before],
            param=[a.ravel().tolist() for a in param],
            grad_after=[g.ravel().tolist() for g in grad],
            weighted=weighted[0].tolist(), weighted_loss=loss,
            shard_x=shard_x.tolist(), shard_y=shard_y.tolist(),
            evaluate=ev, predict=None if pred is None else pred.tolist(),
            predict_padded=None if pred_padded is None else pred_padded.tolist(),
            dropped=len(dropped))
