"""Print the run-time table: dense vs HMF vs LMF vs CSR pruning, layers and LSTMs (= ``hmf-lab bench``).

    python benchmarks/run_bench.py            # full table (about 5-10 minutes), writes benchmarks/results/
    python benchmarks/run_bench.py --quick    # seconds, for CI
    python benchmarks/run_bench.py --help     # sizes, batches, threads, compressions, ...
"""
import sys

from hmf_lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
