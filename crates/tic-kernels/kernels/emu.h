// A CPU stand-in for the bits of CUDA that kernels/fused.cu uses, so that the same source
// compiles with g++ (tic-kernels' `kernel-emu` feature) and its kernels can be tested on a
// machine without a GPU or nvcc.
//
// Model: `emu_launch` runs the blocks of a grid one after another with one std::thread per CUDA
// thread of a block, and __syncthreads is a std::barrier over the block's threads.
// __shared__ variables become function-local statics: one copy, shared by the threads of the
// running block (blocks never run concurrently, and a process-wide mutex serialises launches).
// threadIdx/blockIdx are per-thread (thread_local); blockDim/gridDim are set per launch.
// __nv_bfloat16 converts from f32 with round-to-nearest-even, as the `half` crate's bf16 does.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct tic_emu_dim3 {
  unsigned x = 1, y = 1, z = 1;
};

inline thread_local tic_emu_dim3 threadIdx;
inline thread_local tic_emu_dim3 blockIdx;
inline tic_emu_dim3 blockDim;
inline tic_emu_dim3 gridDim;
inline thread_local std::barrier<>* tic_emu_block_barrier = nullptr;

inline void __syncthreads() { tic_emu_block_barrier->arrive_and_wait(); }

using std::max;
using std::min;

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// bf16: the upper 16 bits of an f32.
struct __nv_bfloat16 {
  uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 v) {
  uint32_t u = uint32_t(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Round to nearest, ties to even; NaN stays NaN (quiet), as half::bf16::from_f32.
inline __nv_bfloat16 __float2bfloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return __nv_bfloat16{uint16_t((x >> 16) | 0x0040u)};
  const uint32_t round_bit = 0x00008000u;
  if ((x & round_bit) != 0 && (x & (3 * round_bit - 1)) != 0)
    return __nv_bfloat16{uint16_t((x >> 16) + 1)};
  return __nv_bfloat16{uint16_t(x >> 16)};
}

// Serialises launches: the __shared__ statics and blockDim/gridDim belong to one launch.
inline std::mutex& tic_emu_launch_mutex() {
  static std::mutex m;
  return m;
}

// Runs `kernel` (a callable that runs the kernel body for the current thread) over `grid`
// blocks of `block` threads: one std::thread per CUDA thread of a block, started once per
// launch; each runs its part of every block in order (x fastest), and a barrier after each
// block keeps the blocks apart (no thread starts block k + 1 before all have left block k).
// A kernel may return early only where it has no __syncthreads after that point (as on a GPU).
inline void emu_launch(tic_emu_dim3 grid, tic_emu_dim3 block, const std::function<void()>& kernel) {
  std::lock_guard<std::mutex> lock(tic_emu_launch_mutex());
  gridDim = grid;
  blockDim = block;
  const unsigned threads = block.x * block.y * block.z;
  std::barrier<> bar(threads);
  std::vector<std::thread> ts;
  ts.reserve(threads);
  for (unsigned tz = 0; tz < block.z; ++tz)
    for (unsigned ty = 0; ty < block.y; ++ty)
      for (unsigned tx = 0; tx < block.x; ++tx)
        ts.emplace_back([&, tx, ty, tz] {
          threadIdx = tic_emu_dim3{tx, ty, tz};
          tic_emu_block_barrier = &bar;
          for (unsigned bz = 0; bz < grid.z; ++bz)
            for (unsigned by = 0; by < grid.y; ++by)
              for (unsigned bx = 0; bx < grid.x; ++bx) {
                blockIdx = tic_emu_dim3{bx, by, bz};
                kernel();
                bar.arrive_and_wait();
              }
        });
  for (auto& t : ts) t.join();
}
