// CUDA kernels of the fused training ops (crates/tic-kernels/src/fused/), float and bf16.
//
// - LayerNorm forward (y, per-row mean and rstd) and backward (dx; dw and db as per-block
//   partial sums, added up in block order by tic_col_sum_finish);
// - bias + exact (erf) GELU forward and backward (dz; db as per-block partial sums);
// - multi-head self-attention forward and backward from the packed qkv [B, L, 3D] (the
//   backward pass recomputes the softmax);
// - the shifted-diagonal cross-entropy (row i's target is column offset + i): per-row losses,
//   their mean, and the gradient.
//
// Correctness and reproducibility first: every reduction is a shared-memory tree over the block
// (blockDim.x must be a power of two, at most TIC_MAX_THREADS) or a sequential loop of one
// thread in a fixed order. There are no atomics, so every run gives the same bits. bf16 kernels
// read and write __nv_bfloat16 and compute in f32.
//
// The same file compiles with g++ against kernels/emu.h (the `kernel-emu` feature of
// tic-kernels): each CUDA thread becomes a std::thread, so the tests can compare these kernels
// with the host kernels on a machine without a GPU.

#ifdef TIC_KERNEL_EMU
#include "emu.h"
#else
#include <cuda_bf16.h>
#endif

// Threads per block, at most (the size of the shared reduction buffers).
#define TIC_MAX_THREADS 256
// The longest sequence (L) and the widest head (hd) the attention kernels take.
#define TIC_MAX_LEN 1024
#define TIC_MAX_HEAD 256

// ---- element access: f32 in registers, float or bf16 in memory -----------------------------
__device__ __forceinline__ float ld(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const __nv_bfloat16* p, long long i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__nv_bfloat16* p, long long i, float v) {
  p[i] = __float2bfloat16(v);
}

// ---- block reductions (shared-memory trees: the same order on every run) ---------------------
// `sh` holds blockDim.x floats; every thread of the block must call these.
__device__ float block_sum(float v, float* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  float r = sh[0];
  __syncthreads();
  return r;
}

__device__ float block_max(float v, float* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  float r = sh[0];
  __syncthreads();
  return r;
}

// ---- GELU (exact: x·Φ(x) with erf) -----------------------------------------------------------
__device__ __forceinline__ float gelu(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}
__device__ __forceinline__ float gelu_grad(float x) {
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  float pdf = expf(-0.5f * x * x) * 0.39894228040143268f;
  return cdf + x * pdf;
}

// ---- column sums over row blocks: the second, deterministic reduction -------------------------
// out[j] = Σ_b partial[b·width + j] in block order, for j < width. Grid: ceil(width/blockDim).
template <typename T>
__device__ void col_sum_finish(const float* partial, T* out, int blocks, int width) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= width) return;
  float acc = 0.0f;
  for (int b = 0; b < blocks; ++b) acc += partial[(long long)b * width + j];
  st(out, j, acc);
}

// ---- LayerNorm -------------------------------------------------------------------------------
// One block per row of x [rows, n]: y = (x − mean)·rstd·w + b; mean and rstd (f32) per row.
template <typename T>
__device__ void ln_fwd(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                       int n, float eps) {
  __shared__ float sh[TIC_MAX_THREADS];
  long long row = blockIdx.x;
  const T* xr = x + row * n;
  T* yr = y + row * n;
  float s = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) s += ld(xr, j);
  float m = block_sum(s, sh) / n;
  float v = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float c = ld(xr, j) - m;
    v += c * c;
  }
  float var = block_sum(v, sh) / n;
  float r = 1.0f / sqrtf(var + eps);
  for (int j = threadIdx.x; j < n; j += blockDim.x)
    st(yr, j, (ld(xr, j) - m) * r * ld(w, j) + ld(b, j));
  if (threadIdx.x == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// Block k handles rows [k·rows_per_block, ...): dx of each row, and this block's partial sums
// partial[k·2n + j] = Σ g·xhat (dw) and partial[k·2n + n + j] = Σ g (db), rows in order.
template <typename T>
__device__ void ln_bwd(const T* x, const T* w, const T* g, const float* mean, const float* rstd,
                       T* dx, float* partial, int rows, int n, int rows_per_block) {
  __shared__ float sh[TIC_MAX_THREADS];
  float* pdw = partial + (long long)blockIdx.x * 2 * n;
  float* pdb = pdw + n;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    pdw[j] = 0.0f;
    pdb[j] = 0.0f;
  }
  int r0 = blockIdx.x * rows_per_block;
  int r1 = min(rows, r0 + rows_per_block);
  for (int row = r0; row < r1; ++row) {
    const T* xr = x + (long long)row * n;
    const T* gr = g + (long long)row * n;
    T* dxr = dx + (long long)row * n;
    float m = mean[row], r = rstd[row];
    float s_gw = 0.0f, s_gwx = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      float xhat = (ld(xr, j) - m) * r;
      float gv = ld(gr, j);
      float gw = gv * ld(w, j);
      s_gw += gw;
      s_gwx += gw * xhat;
      // Each thread owns columns j ≡ threadIdx.x: no other thread touches them.
      pdw[j] += gv * xhat;
      pdb[j] += gv;
    }
    float c1 = block_sum(s_gwx, sh) / n;
    float c2 = block_sum(s_gw, sh) / n;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      float xhat = (ld(xr, j) - m) * r;
      st(dxr, j, r * (ld(gr, j) * ld(w, j) - c2 - xhat * c1));
    }
  }
}

// ---- bias + GELU -----------------------------------------------------------------------------
// out = act(z + b) over z [rows, n] (act: GELU when gelu != 0, else identity); flat grid.
template <typename T>
__device__ void bias_gelu_fwd(const T* z, const T* b, T* out, long long total, int n, int gelu_on) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  float p = ld(z, i) + ld(b, i % n);
  st(out, i, gelu_on ? gelu(p) : p);
}

// dz = g · act'(z + b), and per-row-block partial column sums of dz (the bias gradient):
// grid (ceil(n/blockDim), row blocks); thread = one column, its rows in order.
template <typename T>
__device__ void bias_gelu_bwd(const T* z, const T* b, const T* g, T* dz, float* partial,
                              int rows, int n, int gelu_on, int rows_per_block) {
  int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float bj = ld(b, j);
  int r0 = blockIdx.y * rows_per_block;
  int r1 = min(rows, r0 + rows_per_block);
  float acc = 0.0f;
  for (int r = r0; r < r1; ++r) {
    long long i = (long long)r * n + j;
    float d = ld(g, i);
    if (gelu_on) d *= gelu_grad(ld(z, i) + bj);
    st(dz, i, d);
    acc += d;
  }
  partial[(long long)blockIdx.y * n + j] = acc;
}

// ---- attention -------------------------------------------------------------------------------
// qkv [B, L, 3D]: q, k, v of head h at columns h·hd, D + h·hd, 2D + h·hd; y [B, L, D]; the
// optional additive mask [L, L] (has_mask). Scores: scale·q·kᵀ + mask, softmax per row.

// Row i's softmax numerators e_j = exp(s_j − max) into p[0..L); returns Σ e_j (0 for a fully
// masked row, whose exponentials are all 0). `qs` holds the row's q (hd floats).
template <typename T>
__device__ float attn_row_exp(const T* kb, const float* qs, const float* mrow, float* p, float* sh,
                              int len, int d3, int hd, float scale) {
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    const T* kj = kb + (long long)j * d3;
    float dot = 0.0f;
    for (int d = 0; d < hd; ++d) dot += qs[d] * ld(kj, d);
    float s = scale * dot;
    if (mrow) s += mrow[j];
    p[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = block_max(mx, sh);
  float shift = mx == -INFINITY ? 0.0f : mx;
  float sum = 0.0f;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    float e = expf(p[j] - shift);
    p[j] = e;
    sum += e;
  }
  return block_sum(sum, sh);
}

// One block per (query row i, head h, batch b) = (blockIdx.x, blockIdx.y, blockIdx.z).
template <typename T>
__device__ void attn_fwd(const T* qkv, const float* mask, T* y, int len, int heads, int hd,
                         int has_mask) {
  __shared__ float sh[TIC_MAX_THREADS];
  __shared__ float p[TIC_MAX_LEN];
  __shared__ float qs[TIC_MAX_HEAD];
  int i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  int d = heads * hd, d3 = 3 * d;
  float scale = 1.0f / sqrtf((float)hd);
  const T* base = qkv + (long long)b * len * d3 + h * hd;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) qs[c] = ld(base + (long long)i * d3, c);
  __syncthreads();
  const float* mrow = has_mask ? mask + (long long)i * len : nullptr;
  float sum = attn_row_exp(base + d, qs, mrow, p, sh, len, d3, hd, scale);
  float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  const T* vb = base + 2 * d;
  T* yr = y + ((long long)b * len + i) * d + h * hd;
  for (int c = threadIdx.x; c < hd; c += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < len; ++j) acc += p[j] * ld(vb + (long long)j * d3, c);
    st(yr, c, acc * inv);
  }
}

// One block per (head h, batch b) = (blockIdx.x, blockIdx.y), query rows in order. For row i:
// P_i (recomputed), dP_ij = dy_i·v_j, dS_ij = P_ij·(dP_ij − dy_i·y_i), dq_i = scale·Σ_j dS_ij k_j;
// dv_j += P_ij·dy_i and dk_j += dS_ij·q_i accumulate in the f32 workspace acc [B, H, 2, L, hd]
// (this block's part only), each element owned by one thread; dk gets its scale at the end.
template <typename T>
__device__ void attn_bwd(const T* qkv, const T* y, const T* dy, const float* mask, T* dqkv,
                         float* acc, int len, int heads, int hd, int has_mask) {
  __shared__ float sh[TIC_MAX_THREADS];
  __shared__ float p[TIC_MAX_LEN];
  __shared__ float ds[TIC_MAX_LEN];
  __shared__ float qs[TIC_MAX_HEAD];
  __shared__ float gs[TIC_MAX_HEAD];
  int h = blockIdx.x, b = blockIdx.y;
  int d = heads * hd, d3 = 3 * d;
  float scale = 1.0f / sqrtf((float)hd);
  long long boff = (long long)b * len * d3 + h * hd;
  const T* qb = qkv + boff;
  const T* kb = qb + d;
  const T* vb = qb + 2 * d;
  T* dqb = dqkv + boff;
  T* dkb = dqb + d;
  T* dvb = dqb + 2 * d;
  long long lh = (long long)len * hd;
  float* acc_k = acc + ((long long)b * heads + h) * 2 * lh;
  float* acc_v = acc_k + lh;
  for (long long e = threadIdx.x; e < lh; e += blockDim.x) {
    acc_k[e] = 0.0f;
    acc_v[e] = 0.0f;
  }
  for (int i = 0; i < len; ++i) {
    const T* yr = y + ((long long)b * len + i) * d + h * hd;
    const T* gr = dy + ((long long)b * len + i) * d + h * hd;
    float part = 0.0f;
    for (int c = threadIdx.x; c < hd; c += blockDim.x) {
      qs[c] = ld(qb + (long long)i * d3, c);
      float gv = ld(gr, c);
      gs[c] = gv;
      part += gv * ld(yr, c);
    }
    // block_sum's barriers also publish qs and gs.
    float dot = block_sum(part, sh);
    const float* mrow = has_mask ? mask + (long long)i * len : nullptr;
    float sum = attn_row_exp(kb, qs, mrow, p, sh, len, d3, hd, scale);
    float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
      float pj = p[j] * inv;
      const T* vj = vb + (long long)j * d3;
      float dp = 0.0f;
      for (int c = 0; c < hd; ++c) dp += gs[c] * ld(vj, c);
      p[j] = pj;
      ds[j] = pj * (dp - dot);
    }
    __syncthreads();
    for (int c = threadIdx.x; c < hd; c += blockDim.x) {
      float a = 0.0f;
      for (int j = 0; j < len; ++j) a += ds[j] * ld(kb + (long long)j * d3, c);
      st(dqb + (long long)i * d3, c, scale * a);
    }
    for (long long e = threadIdx.x; e < lh; e += blockDim.x) {
      int j = (int)(e / hd), c = (int)(e % hd);
      acc_v[e] += p[j] * gs[c];
      acc_k[e] += ds[j] * qs[c];
    }
    __syncthreads();
  }
  for (long long e = threadIdx.x; e < lh; e += blockDim.x) {
    long long j = e / hd, c = e % hd;
    st(dkb + j * d3, c, scale * acc_k[e]);
    st(dvb + j * d3, c, acc_v[e]);
  }
}

// ---- shifted-diagonal cross-entropy -----------------------------------------------------------
// The shift of row xr's exponentials (its maximum; 0 for a row of −inf) and, in *sum, the
// block-wide Σ_j exp(x_j − shift): the first pass of both cross-entropy kernels.
template <typename T>
__device__ float ce_row_shift(const T* xr, int n, float* sh, float* sum) {
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) mx = fmaxf(mx, ld(xr, j));
  mx = block_max(mx, sh);
  float shift = mx == -INFINITY ? 0.0f : mx;
  float s = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) s += expf(ld(xr, j) - shift);
  *sum = block_sum(s, sh);
  return shift;
}

// x [m, n], row i's target column offset + i. One block per row: loss[i] = lse(x_i) − x_i,t.
template <typename T>
__device__ void ce_fwd_rows(const T* x, float* loss, int n, int offset) {
  __shared__ float sh[TIC_MAX_THREADS];
  long long i = blockIdx.x;
  const T* xr = x + i * n;
  float s;
  float shift = ce_row_shift(xr, n, sh, &s);
  if (threadIdx.x == 0) loss[i] = logf(s) + shift - ld(xr, offset + i);
}

// One block: out = Σ loss / m (per-thread strided sums, then the block's tree).
template <typename T>
__device__ void ce_fwd_mean(const float* loss, T* out, int m) {
  __shared__ float sh[TIC_MAX_THREADS];
  float s = 0.0f;
  for (int i = threadIdx.x; i < m; i += blockDim.x) s += loss[i];
  s = block_sum(s, sh);
  if (threadIdx.x == 0) st(out, 0, m > 0 ? s / m : 0.0f);
}

// One block per row: dx_ij = g·softmax(x_i)_j − g·[j = offset + i] (g: the loss's gradient / m).
template <typename T>
__device__ void ce_bwd(const T* x, T* dx, int n, int offset, float g) {
  __shared__ float sh[TIC_MAX_THREADS];
  long long i = blockIdx.x;
  const T* xr = x + i * n;
  T* dr = dx + i * n;
  float s;
  float shift = ce_row_shift(xr, n, sh, &s);
  float inv = s > 0.0f ? g / s : 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    float v = expf(ld(xr, j) - shift) * inv;
    if (j == offset + i) v -= g;
    st(dr, j, v);
  }
}

// ---- entry points: tic_<kernel>_f32 and tic_<kernel>_bf16 -------------------------------------
#define TIC_KERNELS(SUF, T)                                                                       \
  extern "C" __global__ void tic_col_sum_finish_##SUF(const float* partial, T* out, int blocks,   \
                                                      int width) {                                \
    col_sum_finish<T>(partial, out, blocks, width);                                               \
  }                                                                                               \
  extern "C" __global__ void tic_ln_fwd_##SUF(const T* x, const T* w, const T* b, T* y,           \
                                              float* mean, float* rstd, int n, float eps) {       \
    ln_fwd<T>(x, w, b, y, mean, rstd, n, eps);                                                    \
  }                                                                                               \
  extern "C" __global__ void tic_ln_bwd_##SUF(const T* x, const T* w, const T* g,                 \
                                              const float* mean, const float* rstd, T* dx,        \
                                              float* partial, int rows, int n,                    \
                                              int rows_per_block) {                               \
    ln_bwd<T>(x, w, g, mean, rstd, dx, partial, rows, n, rows_per_block);                         \
  }                                                                                               \
  extern "C" __global__ void tic_bias_gelu_fwd_##SUF(const T* z, const T* b, T* out,              \
                                                     long long total, int n, int gelu_on) {       \
    bias_gelu_fwd<T>(z, b, out, total, n, gelu_on);                                               \
  }                                                                                               \
  extern "C" __global__ void tic_bias_gelu_bwd_##SUF(const T* z, const T* b, const T* g, T* dz,   \
                                                     float* partial, int rows, int n,             \
                                                     int gelu_on, int rows_per_block) {           \
    bias_gelu_bwd<T>(z, b, g, dz, partial, rows, n, gelu_on, rows_per_block);                     \
  }                                                                                               \
  extern "C" __global__ void tic_attn_fwd_##SUF(const T* qkv, const float* mask, T* y, int len,   \
                                                int heads, int hd, int has_mask) {                \
    attn_fwd<T>(qkv, mask, y, len, heads, hd, has_mask);                                          \
  }                                                                                               \
  extern "C" __global__ void tic_attn_bwd_##SUF(const T* qkv, const T* y, const T* dy,            \
                                                const float* mask, T* dqkv, float* acc, int len,  \
                                                int heads, int hd, int has_mask) {                \
    attn_bwd<T>(qkv, y, dy, mask, dqkv, acc, len, heads, hd, has_mask);                           \
  }                                                                                               \
  extern "C" __global__ void tic_ce_fwd_rows_##SUF(const T* x, float* loss, int n, int offset) {  \
    ce_fwd_rows<T>(x, loss, n, offset);                                                           \
  }                                                                                               \
  extern "C" __global__ void tic_ce_fwd_mean_##SUF(const float* loss, T* out, int m) {            \
    ce_fwd_mean<T>(loss, out, m);                                                                 \
  }                                                                                               \
  extern "C" __global__ void tic_ce_bwd_##SUF(const T* x, T* dx, int n, int offset, float g) {    \
    ce_bwd<T>(x, dx, n, offset, g);                                                               \
  }

TIC_KERNELS(f32, float)
TIC_KERNELS(bf16, __nv_bfloat16)
