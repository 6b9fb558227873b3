"""Data-parallel fit; optionally on uneven blocks, with checkpoints, or resuming.

Usage: mpiexec -n 2 python train.py OUT_DIR DTYPE EPOCHS [MODE [FILE]]

MODE:
- none: ``dist.shard`` (every 2nd sample from the rank, padded to 26 by wrapping);
- ``--uneven``: contiguous blocks split by hand, 13 and 12 samples, so rank 1 runs out
  of batches first and takes an empty step;
- ``--checkpoint``: as none, with ModelCheckpoint and CSVLogger; counts, per rank, the
  model files written through fastconv's atomic writer;
- ``--resume FILE``: as none, loading FILE and training the last epoch only;
- ``--shuffle``: ``dist.shard_dataset`` on all the data, reshuffled globally each
  epoch from seed 3.
"""

import os
import sys

import common

from fastconv import _saving, callbacks, optimizers
from fastconv import distributed as dist

out_dir, dtype, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else None

dist.init(num_threads=1)
writes = []
original_write = _saving._atomic_write


def counting_write(path, data, overwrite):
    writes.append(os.path.basename(path))
    original_write(path, data, overwrite)


_saving._atomic_write = counting_write

model = common.build_model(dtype, optimizer=dist.DistributedOptimizer(optimizers.SGD(0.1)))
dist.broadcast_weights(model)
x, y = common.data(dtype)
if mode == "--uneven":
    block = slice(0, 13) if dist.rank() == 0 else slice(13, None)
    x, y = x[block], y[block]
elif mode == "--shuffle":
    x, y = dist.shard_dataset(x, y, batch_size=common.BATCH, shuffle=True, seed=3), None
else:
    x, y = dist.shard(x, y)
cbs, initial_epoch = [], 0
if mode == "--checkpoint":
    cbs = [callbacks.ModelCheckpoint(os.path.join(out_dir, "w-{epoch}.fcw"),
                                     save_weights_only=True, monitor="loss"),
           callbacks.CSVLogger(os.path.join(out_dir, "log.csv"))]
elif mode == "--resume":
    model.load_weights(sys.argv[5])
    initial_epoch = epochs - 1
history = model.fit(x, y, batch_size=common.BATCH, epochs=epochs, shuffle=False, verbose=2,
                    callbacks=cbs, initial_epoch=initial_epoch)
common.dump(out_dir, dist.rank(), model.get_weights(), history=history.history,
            epochs=history.epoch, writes=writes)
