"""Would sparse products pay? One layer's forward product for a batch of 32, dense against sparse.

For widths 1,000 and 4,096 and densities 0.01 and 0.001 it times W @ x for one [width x width]
layer with that share of its entries kept, as a dense matrix, as torch's CSR and COO sparse
tensors, and as a gathered index product (each kept entry's input row gathered, scaled and
added into its output row with index_add_), and a dense width-100 layer for scale; milliseconds
per product, single-threaded:

    OMP_NUM_THREADS=1 python docs/experiments/sparse_products.py
"""

from __future__ import annotations

import time
import warnings

import torch


def per_call_ms(fn, a, b, n=50):
    fn(a, b)
    start = time.perf_counter()
    for _ in range(n):
        fn(a, b)
    return (time.perf_counter() - start) / n * 1e3


def gathered(entries, x):
    """W @ x from W's kept entries (rows, cols, values), square W."""
    rows, cols, values = entries
    return torch.zeros(x.shape[0], x.shape[1]).index_add_(0, rows, x[cols] * values[:, None])


def main():
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    g = torch.Generator().manual_seed(0)
    print("| width | density | kept | dense ms | CSR ms | COO ms | gathered ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for width, density in ((1000, 0.01), (1000, 0.001), (4096, 0.01), (4096, 0.001)):
        w = torch.randn(width, width, generator=g) * (torch.rand(width, width, generator=g) < density)
        x = torch.randn(width, 32, generator=g)
        csr, coo = w.to_sparse_csr(), w.to_sparse()
        rows, cols = w.nonzero(as_tuple=True)
        entries = (rows, cols, w[rows, cols])
        print(f"| {width} | {density} | {int((w != 0).sum())} | {per_call_ms(torch.mm, w, x):.3f} | "
              f"{per_call_ms(torch.sparse.mm, csr, x):.3f} | {per_call_ms(torch.sparse.mm, coo, x):.3f} | "
              f"{per_call_ms(gathered, entries, x):.3f} |")
    w, x = torch.randn(100, 100, generator=g), torch.randn(100, 32, generator=g)
    print(f"| 100 | 1 | 10000 | {per_call_ms(torch.mm, w, x):.4f} | | |")


if __name__ == "__main__":
    main()
