// Paged attention against a naive float64 attention over a contiguous cache, for block sizes
// 1, 16 and 64 with scrambled (non-contiguous) block ids; and RoPE against its definition.
#include "engine/attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "engine/cpu/kernels.h"
#include "engine/rope.h"

namespace turbine::engine {
namespace {

struct Chunk {
  int32_t start_pos;
  int32_t n_tokens;
};

// Random K/V for every position of every sequence, and random queries for each chunk.
struct Problem {
  int32_t n_heads, n_kv_heads, head_dim;
  std::vector<Chunk> chunks;
  std::vector<std::vector<float>> k, v;  // per sequence: [pos][kv_heads * head_dim]
  std::vector<float> q;                  // [rows][n_heads * head_dim]
  int64_t rows = 0;
};

Problem makeProblem(int32_t n_heads, int32_t n_kv_heads, int32_t head_dim,
                    std::vector<Chunk> chunks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Problem p{n_heads, n_kv_heads, head_dim, std::move(chunks), {}, {}, {}, 0};
  for (const Chunk& c : p.chunks) {
    const size_t n = static_cast<size_t>(c.start_pos + c.n_tokens) * n_kv_heads * head_dim;
    std::vector<float> k(n), v(n);
    for (auto& x : k) x = 2.0f * nd(rng);  // spread scores: a peaked softmax is a harder test
    for (auto& x : v) x = nd(rng);
    p.k.push_back(std::move(k));
    p.v.push_back(std::move(v));
    p.rows += c.n_tokens;
  }
  p.q.resize(static_cast<size_t>(p.rows) * n_heads * head_dim);
  for (auto& x : p.q) x = nd(rng);
  return p;
}

// out[row][h*hd + d] in float64, over a contiguous cache, causal (window > 0: the query at
// position p sees [p - window + 1, p] only).
std::vector<double> naiveAttention(const Problem& p, double scale, int32_t window = 0) {
  const int32_t hd = p.head_dim, group = p.n_heads / p.n_kv_heads;
  std::vector<double> out(p.q.size(), 0.0);
  int64_t row = 0;
  for (size_t s = 0; s < p.chunks.size(); ++s) {
    for (int32_t t = 0; t < p.chunks[s].n_tokens; ++t, ++row) {
      const int32_t ctx = p.chunks[s].start_pos + t + 1;
      const int32_t lo = window > 0 ? std::max(0, ctx - window) : 0;
      for (int32_t h = 0; h < p.n_heads; ++h) {
        const int32_t g = h / group;
        const float* qh = &p.q[(row * p.n_heads + h) * hd];
        std::vector<double> sc(ctx, -INFINITY);
        for (int32_t j = lo; j < ctx; ++j) {
          const float* kj = &p.k[s][(static_cast<size_t>(j) * p.n_kv_heads + g) * hd];
          double d = 0;
          for (int32_t i = 0; i < hd; ++i) d += double{qh[i]} * kj[i];
          sc[j] = d * scale;
        }
        const double mx = *std::max_element(sc.begin(), sc.end());
        double sum = 0;
        for (auto& x : sc) sum += (x = std::exp(x - mx));
        for (int32_t j = lo; j < ctx; ++j) {
          const float* vj = &p.v[s][(static_cast<size_t>(j) * p.n_kv_heads + g) * hd];
          for (int32_t i = 0; i < hd; ++i)
            out[(row * p.n_heads + h) * hd + i] += sc[j] / sum * vj[i];
        }
      }
    }
  }
  return out;
}

// Runs paged attention with the given block size; block ids are a random permutation of the pool.
std::vector<float> pagedAttention(const Problem& p, int32_t block_size, int threads, KvDType dtype,
                                  uint32_t seed, int32_t window = 0) {
  std::vector<std::vector<BlockId>> tables;
  int32_t total_blocks = 0;
  for (const Chunk& c : p.chunks)
    total_blocks += (c.start_pos + c.n_tokens + block_size - 1) / block_size;
  KvCacheOptions o;
  o.num_layers = 2;
  o.num_kv_heads = p.n_kv_heads;
  o.head_dim = p.head_dim;
  o.block_size = block_size;
  o.num_blocks = total_blocks + 3;
  o.dtype = dtype;
  auto kv = KvCache::create(o);
  EXPECT_TRUE(kv.isOk());
  std::vector<BlockId> ids(static_cast<size_t>(o.num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  size_t next = 0;
  const int32_t layer = 1;
  std::vector<AttentionSeq> seqs;
  int64_t row = 0;
  tables.resize(p.chunks.size());
  for (size_t s = 0; s < p.chunks.size(); ++s) {
    const Chunk& c = p.chunks[s];
    const int32_t len = c.start_pos + c.n_tokens;
    for (int32_t b = 0; b < (len + block_size - 1) / block_size; ++b)
      tables[s].push_back(ids[next++]);
    const size_t stride = static_cast<size_t>(p.n_kv_heads) * p.head_dim;
    for (int32_t pos = 0; pos < len; ++pos) {
      (*kv)->store(layer, tables[s][pos / block_size], pos % block_size, &p.k[s][pos * stride],
                   &p.v[s][pos * stride]);
    }
    seqs.push_back({c.start_pos, c.n_tokens, row, tables[s]});
    row += c.n_tokens;
  }
  cpu::ThreadPool pool(threads);
  PagedAttention attention;
  std::vector<float> out(p.q.size(), std::nanf(""));
  const AttentionShape shape{p.n_heads, 1.0f / std::sqrt(static_cast<float>(p.head_dim)), window};
  attention.run(pool, **kv, layer, seqs, shape, p.q.data(), out.data());
  return out;
}

double relError(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

// A prefill chunk with a cached prefix, a fresh prefill, and decodes at various lengths.
std::vector<Chunk> mixedChunks() { return {{37, 29}, {0, 70}, {100, 1}, {0, 1}, {15, 1}}; }

class PagedVsContiguous : public ::testing::TestWithParam<int32_t> {};

// Every kernel level: with AVX-512, decode tokens on an f32 cache read K/V in place
// (cpu::attendDecode, head_dim % 16 == 0); elsewhere, and for the other shapes, they gather.
TEST_P(PagedVsContiguous, MatchesNaiveFloat64) {
  const int32_t bs = GetParam();
  for (const char* isa : {"auto", "avx2", "scalar"}) {
    if (!cpu::setKernelIsa(isa)) continue;
    for (auto [heads, kv_heads, hd] : {std::tuple{4, 2, 64}, std::tuple{6, 6, 24}, std::tuple{8, 1, 40},
                                       std::tuple{8, 2, 128}, std::tuple{2, 2, 32}}) {
      const Problem p = makeProblem(heads, kv_heads, hd, mixedChunks(), 1234u + bs + hd);
      const std::vector<double> want = naiveAttention(p, 1.0 / std::sqrt(double(hd)));
      for (int threads : {1, 3}) {
        const double err = relError(pagedAttention(p, bs, threads, KvDType::kF32, 7u + bs), want);
        EXPECT_LT(err, 1e-5) << "isa " << isa << " block size " << bs << " heads " << heads << "/"
                             << kv_heads << " head_dim " << hd << " threads " << threads;
      }
    }
  }
  cpu::setKernelIsa("auto");
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, PagedVsContiguous, ::testing::Values(1, 16, 64));

// Decode tokens whose contexts are split into spans of blocks over the threads (one long context
// alone: many spans merged; several of mixed lengths; next to a prefill chunk), with and without
// a sliding window (starting mid-block, or shorter than a block), every kernel level, against
// float64. The scalar kernels gather instead: the same answers.
TEST(PagedAttentionTest, DecodeSpansMatchNaive) {
  const std::vector<std::vector<Chunk>> batches = {
      {{700, 1}}, {{700, 1}, {30, 1}, {0, 1}, {250, 1}}, {{37, 29}, {500, 1}, {3, 1}}};
  for (const char* isa : {"auto", "avx2", "scalar"}) {
    if (!cpu::setKernelIsa(isa)) continue;
    for (auto [heads, kv_heads, hd] : {std::tuple{8, 2, 64}, std::tuple{6, 3, 32}, std::tuple{4, 4, 128}}) {
      for (size_t c = 0; c < batches.size(); ++c) {
        const Problem p = makeProblem(heads, kv_heads, hd, batches[c], 77u + static_cast<uint32_t>(c) + hd);
        for (int32_t window : {0, 100, 5}) {
          const std::vector<double> want = naiveAttention(p, 1.0 / std::sqrt(double(hd)), window);
          for (int32_t bs : {1, 16, 64}) {
            for (int threads : {1, 2, 3}) {
              const double err = relError(pagedAttention(p, bs, threads, KvDType::kF32, 5u + bs, window), want);
              EXPECT_LT(err, 1e-5) << "isa " << isa << " batch " << c << " heads " << heads << "/" << kv_heads
                                   << " head_dim " << hd << " window " << window << " block size " << bs
                                   << " threads " << threads;
            }
          }
        }
      }
    }
  }
  cpu::setKernelIsa("auto");
}

// The in-place decode kernel itself: blocks scattered in memory, a partial last block, f32, f16
// and bf16 K/V rows, against float64 on the stored (rounded) values, for group sizes nq that take
// every head grouping (4, 2 and 1 heads at a time), at every kernel level: AVX-512 and AVX2
// offer it for every hd % 16 == 0 (the shapes below), the scalar kernels not.
// (hd % 16 != 0 is never offered: PagedVsContiguous covers that fallback.)
TEST(AttendDecodeTest, MatchesFloat64OverScatteredBlocks) {
  using model::DType;
  for (const char* isa : {"auto", "avx2", "scalar"}) {
    if (!cpu::setKernelIsa(isa)) continue;
    for (DType kv : {DType::kF32, DType::kF16, DType::kBF16}) {
      SCOPED_TRACE(std::string("isa ") + cpu::kernelIsa() + " kv " + model::dtypeName(kv));
      EXPECT_FALSE(cpu::canAttendDecode(24, kv));
      EXPECT_FALSE(cpu::canAttendDecode(40, kv));
      EXPECT_FALSE(cpu::canAttendDecode(64, DType::kQ8_0));
      std::mt19937 rng(99);
      std::normal_distribution<float> dist(0.0f, 1.0f);
      // One stored element: its bytes in `raw` (f32 or 16-bit), its value returned.
      auto store = [&](std::vector<uint8_t>& raw, size_t i, float x) {
        if (kv == DType::kF32) {
          std::memcpy(raw.data() + 4 * i, &x, 4);
          return x;
        }
        const uint16_t h = kv == DType::kF16 ? floatToF16(x) : floatToBf16(x);
        std::memcpy(raw.data() + 2 * i, &h, 2);
        return kv == DType::kF16 ? f16ToFloat(h) : bf16ToFloat(h);
      };
      const size_t elem = kv == DType::kF32 ? 4 : 2;
      for (int32_t hd : {16, 64, 128, 48}) {  // 48: the generic (in-memory) V accumulation
        for (auto [ctx, nq] :
             {std::pair{1, 3}, {5, 1}, {16, 2}, {37, 3}, {300, 4}, {45, 7}, {70, 8}}) {
          const int32_t bs = 16, blocks = (ctx + bs - 1) / bs;
          const size_t per_block = static_cast<size_t>(bs * hd);
          std::vector<std::vector<uint8_t>> kb(blocks), vb(blocks);  // as stored
          std::vector<std::vector<float>> kf(blocks), vf(blocks);    // their values
          std::vector<const void*> kp, vp;
          for (int32_t b = 0; b < blocks; ++b) {
            kb[b].resize(per_block * elem);
            vb[b].resize(per_block * elem);
            kf[b].resize(per_block);
            vf[b].resize(per_block);
            for (size_t i = 0; i < per_block; ++i) kf[b][i] = store(kb[b], i, dist(rng));
            for (size_t i = 0; i < per_block; ++i) vf[b][i] = store(vb[b], i, dist(rng));
            kp.push_back(kb[b].data());
            vp.push_back(vb[b].data());
          }
          std::vector<float> q(static_cast<size_t>(nq * hd));
          for (auto& x : q) x = dist(rng);
          const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
          std::vector<float> scores(static_cast<size_t>(nq * ctx));
          std::vector<float> out(static_cast<size_t>(nq * hd), NAN);
          const bool simd = std::string(cpu::kernelIsa()) != "scalar";
          EXPECT_EQ(cpu::canAttendDecode(hd, kv), simd) << "hd " << hd;
          if (!cpu::canAttendDecode(hd, kv)) continue;
          // skip > 0: a sliding window starting inside the first block.
          for (const int32_t skip : {0, std::min(ctx - 1, 11)}) {
            cpu::attendDecode(kv, q.data(), nq, 1, kp.data(), vp.data(), 0, bs, ctx, hd, scale,
                              scores.data(), out.data(), nullptr, nullptr, skip);
            std::vector<double> want(out.size());
            for (int32_t j = 0; j < nq; ++j) {
              std::vector<double> s(static_cast<size_t>(ctx));
              double mx = -INFINITY, sum = 0;
              for (int32_t t = skip; t < ctx; ++t) {
                const float* k = kf[t / bs].data() + (t % bs) * hd;
                double d = 0;
                for (int32_t c = 0; c < hd; ++c) d += double(q[j * hd + c]) * k[c];
                s[t] = d * scale;
                mx = std::max(mx, s[t]);
              }
              for (int32_t t = skip; t < ctx; ++t) sum += (s[t] = std::exp(s[t] - mx));
              for (int32_t t = skip; t < ctx; ++t) {
                const float* v = vf[t / bs].data() + (t % bs) * hd;
                for (int32_t c = 0; c < hd; ++c) want[j * hd + c] += s[t] / sum * v[c];
              }
            }
            for (int32_t j = 0; j < nq; ++j) {  // each head on its own: a wrong one is not averaged
              const std::vector<float> got(out.begin() + j * hd, out.begin() + (j + 1) * hd);
              const std::vector<double> ref(want.begin() + j * hd, want.begin() + (j + 1) * hd);
              EXPECT_LT(relError(got, ref), 1e-5) << "hd " << hd << " ctx " << ctx << " nq " << nq
                                                  << " skip " << skip << " head " << j;
            }
          }
        }
      }
    }
  }
  cpu::setKernelIsa("auto");
}

TEST(PagedAttentionTest, HalfPrecisionCacheIsClose) {
  const Problem p = makeProblem(4, 2, 32, mixedChunks(), 99u);
  const std::vector<double> want = naiveAttention(p, 1.0 / std::sqrt(32.0));
  EXPECT_LT(relError(pagedAttention(p, 16, 2, KvDType::kF16, 3u), want), 3e-3);
  EXPECT_LT(relError(pagedAttention(p, 16, 2, KvDType::kBF16, 3u), want), 3e-2);
}

// --- RoPE ---

model::ModelConfig ropeConfig(model::RopeStyle style, int32_t hd) {
  model::ModelConfig c;
  c.head_dim = hd;
  c.rope_theta = 10000.0f;
  c.rope_style = style;
  return c;
}

TEST(RopeTest, HalfStyleMatchesDefinition) {
  const int32_t hd = 16, pos = 37;
  auto rope = RopeTable::create(ropeConfig(model::RopeStyle::kHalf, hd), 64);
  ASSERT_TRUE(rope.isOk());
  std::vector<float> x(hd);
  for (int i = 0; i < hd; ++i) x[i] = 0.1f * i - 0.7f;
  std::vector<float> y = x;
  rope->apply(y.data(), 1, pos);
  for (int i = 0; i < hd / 2; ++i) {
    const double a = pos * std::pow(10000.0, -2.0 * i / hd);
    EXPECT_NEAR(y[i], x[i] * std::cos(a) - x[i + hd / 2] * std::sin(a), 1e-5);
    EXPECT_NEAR(y[i + hd / 2], x[i + hd / 2] * std::cos(a) + x[i] * std::sin(a), 1e-5);
  }
}

// GGUF llama files permute q/k rows so that interleaved pairs (2i, 2i+1) hold what HF's half
// pairs (i, i + hd/2) hold; rotating either way must then agree under that permutation.
TEST(RopeTest, InterleavedEqualsHalfUnderPermutation) {
  const int32_t hd = 32, heads = 3;
  auto half = RopeTable::create(ropeConfig(model::RopeStyle::kHalf, hd), 512);
  auto inter = RopeTable::create(ropeConfig(model::RopeStyle::kInterleaved, hd), 512);
  ASSERT_TRUE(half.isOk() && inter.isOk());
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> x(heads * hd);
  for (auto& e : x) e = nd(rng);
  std::vector<float> xp(x.size());
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      xp[h * hd + 2 * i] = x[h * hd + i];
      xp[h * hd + 2 * i + 1] = x[h * hd + i + hd / 2];
    }
  }
  half->apply(x.data(), heads, 311);
  inter->apply(xp.data(), heads, 311);
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      EXPECT_FLOAT_EQ(xp[h * hd + 2 * i], x[h * hd + i]);
      EXPECT_FLOAT_EQ(xp[h * hd + 2 * i + 1], x[h * hd + i + hd / 2]);
    }
  }
}

TEST(RopeTest, ScalingRules) {
  model::ModelConfig c = ropeConfig(model::RopeStyle::kHalf, 128);
  c.rope_theta = 500000.0f;
  const std::vector<double> base = RopeTable::inverseFrequencies(c);
  c.rope_scaling.type = model::RopeScaling::Type::kLinear;
  c.rope_scaling.factor = 4.0f;
  const std::vector<double> lin = RopeTable::inverseFrequencies(c);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_DOUBLE_EQ(lin[i], base[i] / 4.0);
  c.rope_scaling = {model::RopeScaling::Type::kLlama3, 8.0f, 1.0f, 4.0f, 8192, {}};
  const std::vector<double> l3 = RopeTable::inverseFrequencies(c);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * M_PI / base[i];
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_DOUBLE_EQ(l3[i], base[i]);
      ++kept;
    } else if (wavelen > 8192.0) {
      EXPECT_DOUBLE_EQ(l3[i], base[i] / 8.0);
      ++divided;
    } else {
      EXPECT_GT(l3[i], base[i] / 8.0);
      EXPECT_LT(l3[i], base[i]);
      ++blended;
    }
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
}

TEST(RopeTest, RejectsOddHeadDim) {
  EXPECT_FALSE(RopeTable::create(ropeConfig(model::RopeStyle::kHalf, 7), 8).isOk());
  EXPECT_FALSE(RopeTable::create(ropeConfig(model::RopeStyle::kHalf, 8), 0).isOk());
}

}  // namespace
}  // namespace turbine::engine
