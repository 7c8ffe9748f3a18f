__version__ = "0.1.0"

# CPU threads on a shared machine (#17). torch's bundled libgomp makes an idle OpenMP worker spin (GOMP_SPINCOUNT
# 300,000 pause loops, ~10 ms) before it sleeps; when another process holds a core the spinning worker burns the time
# slice its team is waiting for, and every parallel op stretches to a scheduler tick (31 s against 5 s per teach step).
# PASSIVE makes waiting workers sleep at once. libgomp reads this once, when torch loads it, so it is set here, before
# any of the kit's modules imports torch; a process that imported torch first (a notebook kernel) gets it from its
# environment instead: `alta-nb reproduce` (which imports this first) passes it to its kernels. An explicit setting wins.
import os as _os
_os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
