// vLLM KV event ingestion (issue 5 §3): what reading a vLLM worker's events costs the router's
// thread before its index sees them — decoding the MessagePack KVEventBatch and re-hashing its
// blocks from their token ids (kv::VllmBlockTranslator) — and the translator's memory per block
// held. One thread. Usage: vllm_events_bench [workers] [blocks_per_worker] [steps]
//
// Each worker's translator is filled with blocks_per_worker blocks, then each step is one batch
// of a random worker, as vLLM sends them: BlockStored of a 32-block chain (16 tokens per block,
// 32-byte SHA-256-like hashes, as vLLM's default sha256 hashing) and BlockRemoved of that worker's
// oldest chain, so the maps keep their size. Timed: decode and translate, per block event.
// Then SGLang's default page size (1 token): one translator (a worker relays one engine) holding
// `pages` pages, each step a batch of one 512-token prompt's pages (one BlockStored of one int64
// hash each, chained by parent) and the removal of the oldest prompt's pages, leaf first.
#define MSGPACK_NO_BOOST 1
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <msgpack.hpp>

#include "kv/block_hash.h"
#include "kv/vllm_events.h"

using namespace turbine;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kChain = 32;
constexpr int kBlock = 16;

struct Digest {
  char bytes[32];
};

Digest randomDigest(std::mt19937_64& rng) {
  Digest d;
  for (int i = 0; i < 4; ++i) {
    const uint64_t v = rng();
    std::memcpy(d.bytes + 8 * i, &v, 8);
  }
  return d;
}

using Packer = msgpack::packer<msgpack::sbuffer>;

// A block hash as vLLM sends it (32 bytes of SHA-256) or as SGLang does (an int64).
void packHash(Packer& pk, const Digest& d) {
  pk.pack_bin(32);
  pk.pack_bin_body(d.bytes, 32);
}
void packHash(Packer& pk, int64_t h) { pk.pack(h); }

// ["BlockRemoved", [hashes], "GPU"]
template <typename H>
void packRemoved(Packer& pk, std::span<const H> hashes) {
  pk.pack_array(3);
  pk.pack(std::string("BlockRemoved"));
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (const H& h : hashes) packHash(pk, h);
  pk.pack(std::string("GPU"));
}

// ["BlockStored", [hashes], parent|nil, tokens, block_size, nil, "GPU"]
template <typename H>
void packStored(Packer& pk, std::span<const H> hashes, const H* parent, std::span<const int32_t> tokens,
                int block_size) {
  pk.pack_array(7);
  pk.pack(std::string("BlockStored"));
  pk.pack_array(static_cast<uint32_t>(hashes.size()));
  for (const H& h : hashes) packHash(pk, h);
  if (parent != nullptr) {
    packHash(pk, *parent);
  } else {
    pk.pack_nil();
  }
  pk.pack_array(static_cast<uint32_t>(tokens.size()));
  for (int32_t t : tokens) pk.pack(t);
  pk.pack(block_size);
  pk.pack_nil();
  pk.pack(std::string("GPU"));
}

// A KVEventBatch's head: [ts, [ then `events` events follow.
void packBatchHead(Packer& pk, size_t events) {
  pk.pack_array(2);
  pk.pack(1.7e9);
  pk.pack_array(static_cast<uint32_t>(events));
}

// vLLM's batch: [ts, [BlockRemoved of `removed`?, BlockStored of the 16-token chain `stored`]].
std::string batch(const std::vector<Digest>& stored, const std::vector<int32_t>& tokens,
                  const std::vector<Digest>* removed) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  packBatchHead(pk, removed ? 2 : 1);
  if (removed) packRemoved<Digest>(pk, *removed);
  packStored<Digest>(pk, stored, nullptr, tokens, kBlock);
  return std::string(buf.data(), buf.size());
}

// SGLang's batch of 1-token pages: [ts, [BlockRemoved of each removed page (leaf first)...,
// BlockStored of each page, chained by parent...]].
std::string pageBatch(const std::vector<int64_t>& stored, const std::vector<int32_t>& tokens,
                      const std::vector<int64_t>* removed) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  packBatchHead(pk, stored.size() + (removed ? removed->size() : 0));
  if (removed) {
    for (auto it = removed->rbegin(); it != removed->rend(); ++it) packRemoved<int64_t>(pk, {&*it, 1});
  }
  for (size_t i = 0; i < stored.size(); ++i) {
    packStored<int64_t>(pk, {&stored[i], 1}, i == 0 ? nullptr : &stored[i - 1], {&tokens[i], 1}, 1);
  }
  return std::string(buf.data(), buf.size());
}

// SGLang's page size 1 through one translator (see the file comment).
void pagePhase(int pages, int steps) {
  constexpr int kPrompt = 512;
  std::mt19937_64 rng(2);
  kv::VllmBlockTranslator tr(kv::rootHash("bench-model", ""), kBlock);
  std::deque<std::vector<int64_t>> held;
  std::vector<int32_t> tokens(kPrompt);
  double decode_s = 0, translate_s = 0;
  size_t out_blocks = 0;
  auto step = [&](bool remove, uint64_t seq) {
    std::vector<int64_t> chain(kPrompt);
    for (auto& h : chain) h = static_cast<int64_t>(rng() >> 1);
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % 128000);
    const std::string payload = pageBatch(chain, tokens, remove ? &held.front() : nullptr);
    const auto t0 = Clock::now();
    auto decoded = kv::decodeVllmEventBatch(payload);
    const auto t1 = Clock::now();
    if (!decoded) std::exit(1);
    const auto msg = tr.translate(*decoded, 1, seq);
    const auto t2 = Clock::now();
    for (const auto& e : msg.events) {
      if (const auto* st = std::get_if<kv::BlockStored>(&e)) out_blocks += st->block_hashes.size();
    }
    decode_s += std::chrono::duration<double>(t1 - t0).count();
    translate_s += std::chrono::duration<double>(t2 - t1).count();
    if (remove) held.pop_front();
    held.push_back(std::move(chain));
  };
  uint64_t seq = 0;
  for (int i = 0; i < pages / kPrompt; ++i) step(false, seq++);
  std::printf("pages of 1 token (SGLang's default): %zu pages held, %.1f bytes each in the translator\n", tr.size(),
              double(tr.memoryBytes()) / double(tr.size()));
  decode_s = translate_s = 0;
  out_blocks = 0;
  for (int i = 0; i < steps; ++i) step(true, seq++);
  const double events = double(steps) * 2 * kPrompt;
  std::printf("pages of 1 token, steady state: %d batches of %d stored + %d removed pages: decode %.1f ns, "
              "translate %.1f ns per page event; %.2f M page events/s through both (one core); %zu blocks of %d "
              "stored\n",
              steps, kPrompt, kPrompt, decode_s / events * 1e9, translate_s / events * 1e9,
              events / (decode_s + translate_s) / 1e6, out_blocks, kBlock);
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::atoi(argv[1]) : 100;
  const int blocks_per_worker = argc > 2 ? std::atoi(argv[2]) : 51200;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 100000;
  std::mt19937_64 rng(1);
  const kv::BlockHash root = kv::rootHash("bench-model", "");
  std::vector<kv::VllmBlockTranslator> translators;
  translators.reserve(static_cast<size_t>(workers));
  for (int w = 0; w < workers; ++w) translators.emplace_back(root, kBlock);
  std::vector<std::deque<std::vector<Digest>>> held(static_cast<size_t>(workers));
  std::vector<int32_t> tokens(kChain * kBlock);
  auto nextChain = [&](int w, bool remove, double& decode_s, double& translate_s, uint64_t seq) {
    std::vector<Digest> chain(kChain);
    for (auto& d : chain) d = randomDigest(rng);
    for (auto& t : tokens) t = static_cast<int32_t>(rng() % 128000);
    auto& mine = held[static_cast<size_t>(w)];
    const std::string payload = batch(chain, tokens, remove ? &mine.front() : nullptr);
    const auto t0 = Clock::now();
    auto decoded = kv::decodeVllmEventBatch(payload);
    const auto t1 = Clock::now();
    if (!decoded) {
      std::fprintf(stderr, "decode failed: %s\n", decoded.status().toString().c_str());
      std::exit(1);
    }
    const auto msg = translators[static_cast<size_t>(w)].translate(*decoded, static_cast<kv::WorkerId>(w + 1), seq);
    const auto t2 = Clock::now();
    if (msg.events.empty()) std::exit(1);
    decode_s += std::chrono::duration<double>(t1 - t0).count();
    translate_s += std::chrono::duration<double>(t2 - t1).count();
    if (remove) mine.pop_front();
    mine.push_back(std::move(chain));
  };

  // Fill.
  double decode_s = 0, translate_s = 0;
  uint64_t seq = 0;
  for (int round = 0; round < blocks_per_worker / kChain; ++round) {
    for (int w = 0; w < workers; ++w) nextChain(w, false, decode_s, translate_s, seq++);
  }
  size_t held_blocks = 0, table_bytes = 0;
  for (const auto& t : translators) held_blocks += t.size(), table_bytes += t.memoryBytes();
  const double fill_blocks = double(seq) * kChain;
  std::printf("fill: %d workers x %d blocks: decode %.1f ns, translate %.1f ns per stored block (tables grown "
              "as they fill)\n",
              workers, blocks_per_worker, decode_s / fill_blocks * 1e9, translate_s / fill_blocks * 1e9);
  std::printf("memory: %zu vLLM blocks held, %.1f bytes each in the translators' tables\n", held_blocks,
              double(table_bytes) / double(held_blocks));

  // Steady state: one batch (store 32 + remove 32) of a random worker per step.
  decode_s = translate_s = 0;
  for (int i = 0; i < steps; ++i) {
    nextChain(static_cast<int>(rng() % static_cast<uint64_t>(workers)), true, decode_s, translate_s, seq++);
  }
  const double events = double(steps) * 2 * kChain;
  std::printf("steady state: %d batches of %d stored + %d removed blocks: decode %.1f ns, translate %.1f ns per "
              "block event; %.2f M block events/s through both (one core)\n",
              steps, kChain, kChain, decode_s / events * 1e9, translate_s / events * 1e9,
              events / (decode_s + translate_s) / 1e6);
  pagePhase(1 << 20, 2000);
  return 0;
}
