"""Learning tests share 2 cores with everything else: one torch thread per process.

(Two OpenMP threads on a busy 2-core machine made a 0.4 s BC run take 40 s.)
"""

import torch

torch.set_num_threads(1)
