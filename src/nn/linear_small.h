// Few-row dense kernels (token-by-token decoding: N = batch size), used by linear_forward and
// conv1d_forward below LINEAR_SMALL_N rows, where sgemm spends its time packing the whole weight for a
// handful of output rows. Decoding is bound by streaming the weights from memory once per step, so these
// read every weight exactly once per call, keep a block of outputs in vector registers and never write
// the weight anywhere. Each output is summed by one thread in an order fixed by (C, its column) alone:
// results do not depend on N, on the other rows or on the thread count.
#ifndef RLHF_NN_LINEAR_SMALL_H
#define RLHF_NN_LINEAR_SMALL_H

// Up to this many rows go through the kernels below; more rows amortise sgemm's packing.
#define LINEAR_SMALL_N 16

// out: (N, OC) (+)= inp: (N, C) . weight rows: (OC, C) — nn.Linear's layout. accumulate: add to out.
void linear_small_n_forward(float *out, const float *inp, const float *weight, int N, int C, int OC,
                            int accumulate);
// out: (N, OC) (+)= inp: (N, C) @ weight: (C, OC) — GPT-2's Conv1D layout. Each output is
// sum over c in order of inp[n][c] * weight[c][j], a multiply and an add per term (what the
// plain loop computes).
void conv1d_small_n_forward(float *out, const float *inp, const float *weight, int N, int C, int OC,
                            int accumulate);

#endif
