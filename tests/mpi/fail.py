"""Rank 1 fails in the middle of fit while rank 0 waits in the gradient allreduce.

Usage: mpiexec -n 2 python fail.py {raise|exit}

``raise``: an uncaught exception (fastconv.distributed's hook aborts the job);
``exit``: the process vanishes without Python's cleanup (as if killed), which the MPI
launcher itself must notice.
"""

import os
import sys

import common

from fastconv import callbacks, optimizers
from fastconv import distributed as dist

dist.init(num_threads=1)


class FailOnRankOne(callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if dist.rank() == 1 and batch == 1:
            if sys.argv[1] == "exit":
                os._exit(3)
            raise RuntimeError("deliberate failure on rank 1")


model = common.build_model(optimizer=dist.DistributedOptimizer(optimizers.SGD(0.1)))
x, y = dist.shard(*common.data())
model.fit(x, y, batch_size=common.BATCH, epochs=1000, verbose=0, callbacks=[FailOnRankOne()])
print("unreachable: training finished", flush=True)
