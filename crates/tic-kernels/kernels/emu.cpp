// Host launch wrappers for the g++ build of fused.cu (tic-kernels' `kernel-emu` feature): one
// `tic_emu_<kernel>_<f32|bf16>` per kernel, taking the grid (gx, gy, gz) and the threads per
// block first, then the kernel's own arguments. Used by src/fused/emu.rs.
#define TIC_KERNEL_EMU 1
#include "fused.cu"

#define TIC_EMU_WRAPPERS(SUF, T)                                                                  \
  extern "C" void tic_emu_col_sum_finish_##SUF(unsigned gx, unsigned gy, unsigned gz,             \
                                               unsigned threads, const float* partial, T* out,    \
                                               int blocks, int width) {                           \
    emu_launch({gx, gy, gz}, {threads, 1, 1},                                                     \
               [&] { tic_col_sum_finish_##SUF(partial, out, blocks, width); });                   \
  }                                                                                               \
  extern "C" void tic_emu_ln_fwd_##SUF(unsigned gx, unsigned gy, unsigned gz, unsigned threads,   \
                                       const T* x, const T* w, const T* b, T* y, float* mean,     \
                                       float* rstd, int n, float eps) {                           \
    emu_launch({gx, gy, gz}, {threads, 1, 1},                                                     \
               [&] { tic_ln_fwd_##SUF(x, w, b, y, mean, rstd, n, eps); });                        \
  }                                                                                               \
  extern "C" void tic_emu_ln_bwd_##SUF(unsigned gx, unsigned gy, unsigned gz, unsigned threads,   \
                                       const T* x, const T* w, const T* g, const float* mean,     \
                                       const float* rstd, T* dx, float* partial, int rows, int n, \
                                       int rows_per_block) {                                      \
    emu_launch({gx, gy, gz}, {threads, 1, 1}, [&] {                                               \
      tic_ln_bwd_##SUF(x, w, g, mean, rstd, dx, partial, rows, n, rows_per_block);                \
    });                                                                                           \
  }                                                                                               \
  extern "C" void tic_emu_bias_gelu_fwd_##SUF(unsigned gx, unsigned gy, unsigned gz,              \
                                              unsigned threads, const T* z, const T* b, T* out,   \
                                              long long total, int n, int gelu_on) {              \
    emu_launch({gx, gy, gz}, {threads, 1, 1},                                                     \
               [&] { tic_bias_gelu_fwd_##SUF(z, b, out, total, n, gelu_on); });                   \
  }                                                                                               \
  extern "C" void tic_emu_bias_gelu_bwd_##SUF(unsigned gx, unsigned gy, unsigned gz,              \
                                              unsigned threads, const T* z, const T* b,           \
                                              const T* g, T* dz, float* partial, int rows, int n, \
                                              int gelu_on, int rows_per_block) {                  \
    emu_launch({gx, gy, gz}, {threads, 1, 1}, [&] {                                               \
      tic_bias_gelu_bwd_##SUF(z, b, g, dz, partial, rows, n, gelu_on, rows_per_block);            \
    });                                                                                           \
  }                                                                                               \
  extern "C" void tic_emu_attn_fwd_##SUF(unsigned gx, unsigned gy, unsigned gz, unsigned threads, \
                                         const T* qkv, const float* mask, T* y, int len,          \
                                         int heads, int hd, int has_mask) {                       \
    emu_launch({gx, gy, gz}, {threads, 1, 1},                                                     \
               [&] { tic_attn_fwd_##SUF(qkv, mask, y, len, heads, hd, has_mask); });              \
  }                                                                                               \
  extern "C" void tic_emu_attn_bwd_##SUF(unsigned gx, unsigned gy, unsigned gz, unsigned threads, \
                                         const T* qkv, const T* y, const T* dy,                   \
                                         const float* mask, T* dqkv, float* acc, int len,         \
                                         int heads, int hd, int has_mask) {                       \
    emu_launch({gx, gy, gz}, {threads, 1, 1}, [&] {                                               \
      tic_attn_bwd_##SUF(qkv, y, dy, mask, dqkv, acc, len, heads, hd, has_mask);                  \
    });                                                                                           \
  }                                                                                               \
  extern "C" void tic_emu_ce_fwd_rows_##SUF(unsigned gx, unsigned gy, unsigned gz,                \
                                            unsigned threads, const T* x, float* loss, int n,     \
                                            int offset) {                                         \
    emu_launch({gx, gy, gz}, {threads, 1, 1}, [&] { tic_ce_fwd_rows_##SUF(x, loss, n, offset); }); \
  }                                                                                               \
  extern "C" void tic_emu_ce_fwd_mean_##SUF(unsigned gx, unsigned gy, unsigned gz,                \
                                            unsigned threads, const float* loss, T* out, int m) { \
    emu_launch({gx, gy, gz}, {threads, 1, 1}, [&] { tic_ce_fwd_mean_##SUF(loss, out, m); });      \
  }                                                                                               \
  extern "C" void tic_emu_ce_bwd_##SUF(unsigned gx, unsigned gy, unsigned gz, unsigned threads,   \
                                       const T* x, T* dx, int n, int offset, float g) {           \
    emu_launch({gx, gy, gz}, {threads, 1, 1}, [&] { tic_ce_bwd_##SUF(x, dx, n, offset, g); });    \
  }

TIC_EMU_WRAPPERS(f32, float)
TIC_EMU_WRAPPERS(bf16, __nv_bfloat16)
