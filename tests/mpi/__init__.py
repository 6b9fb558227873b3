"""Small programs that tests/test_distributed.py runs under ``mpiexec -n 2``."""
