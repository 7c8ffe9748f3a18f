__version__ = "0.1.0"

# CPU threads (#17, #31): the kit leaves libgomp's waiting policy as it is (workers spin ~300k pause loops before
# they sleep: the fastest when the cores are ours) and instead trains with as many threads as the machine has free,
# step by step (`threads.AutoThreads`, used by `train.fit` when `cfg.threads` is 0): under load a step runs on one
# thread, and one thread has nobody to spin. `OMP_WAIT_POLICY=PASSIVE` in the environment still wins (`make test`
# sets it: the tests run two smoke runs side by side). `python bench/cpu_load.py` measures the policy.
