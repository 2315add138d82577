"""One intra-op thread for the training tests: on a shared, oversubscribed CPU, OpenMP threads spin-wait
on each other and a small model's step gets 20-100x slower; one thread is also what makes runs bitwise
reproducible across machines with different core counts."""

import torch

torch.set_num_threads(1)
