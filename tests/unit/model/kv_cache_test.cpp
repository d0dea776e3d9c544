// The paged KV cache: block allocation and freeing under random workloads against a reference
// model, running out of blocks, copies, and attention over scattered blocks against the same
// rows laid out contiguously.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>

#include "kernels/cpu/attention.h"
#include "runtime/core/error.h"
#include "runtime/model/kv_cache.h"

namespace moe::model {
namespace {

TEST(KvBlockPool, AllocatesLowestFirstAndRefusesWhenEmpty) {
  KvBlockPool pool(2, 8, 4, 3);
  EXPECT_EQ(*pool.allocate(), 0);
  EXPECT_EQ(*pool.allocate(), 1);
  EXPECT_EQ(*pool.allocate(), 2);
  EXPECT_FALSE(pool.allocate().has_value());
  pool.release(1);
  EXPECT_EQ(pool.free_blocks(), 1);
  EXPECT_EQ(*pool.allocate(), 1);
  EXPECT_THROW(pool.release(7), Error);
  pool.release(0);
  EXPECT_THROW(pool.release(0), Error);  // twice
}

TEST(KvBlockPool, SizesItsBudget) {
  // 2 layers x 8 floats x 4 tokens x 2 (keys, values) x 4 bytes = 512 bytes a block.
  EXPECT_EQ(KvBlockPool::block_bytes(2, 8, 4), 512u);
  EXPECT_EQ(KvBlockPool::blocks_within(2047, 2, 8, 4), 3);
  EXPECT_THROW(KvBlockPool::blocks_within(511, 2, 8, 4), Error);
}

// Random sequences grow, shrink (clear) and end against a reference of who holds what: no block
// is ever held twice, every block comes back, and a cache that cannot grow is left unchanged.
// A pool without values (multi-head latent attention): half the bytes, values() are the keys,
// and caches made in it or copied from one keep their rows.
TEST(KvBlockPool, KeysOnlyPoolsHoldHalfTheBytes) {
  KvBlockPool pool(3, 10, 4, 5, /*with_values=*/false);
  EXPECT_FALSE(pool.with_values());
  EXPECT_EQ(pool.block_bytes(), uint64_t(3 * 10 * 4 * sizeof(float)));
  EXPECT_EQ(KvBlockPool::block_bytes(3, 10, 4), 2 * pool.block_bytes());
  EXPECT_EQ(KvBlockPool::token_bytes(3, 10, false), uint64_t(3 * 10 * sizeof(float)));
  EXPECT_EQ(KvBlockPool::blocks_within(10 * pool.block_bytes(), 3, 10, 4, false), 10);
  EXPECT_EQ(pool.values(2), pool.keys(2));
  KvCache private_cache(3, 1, 10, 6, /*with_values=*/false);
  private_cache.advance(6);
  for (int l = 0; l < 3; ++l)
    for (int64_t p = 0; p < 6; ++p) std::fill_n(private_cache.key_row(l, p), 10, float(l * 100 + p));
  EXPECT_EQ(private_cache.value_row(1, 2), private_cache.key_row(1, 2));
  const KvCache copy = private_cache;
  EXPECT_FALSE(copy.pool().with_values());
  EXPECT_EQ(copy.key_row(2, 5)[9], 205.0f);
  EXPECT_EQ(copy.blocks(1).values, copy.blocks(1).keys);
}

TEST(KvCache, RandomWorkloadAgainstAReferenceModel) {
  std::mt19937 rng(3);
  const int64_t block_tokens = 5, blocks = 40;
  auto pool = std::make_shared<KvBlockPool>(3, 6, block_tokens, blocks);
  std::map<int, std::unique_ptr<KvCache>> caches;
  std::map<int, int64_t> lengths;  // the reference: each cache's tokens
  int next = 0;
  int refusals = 0;
  for (int step = 0; step < 4000; ++step) {
    const int action = int(rng() % 10);
    if (action < 2 || caches.empty()) {
      caches[next] = std::make_unique<KvCache>(pool, 60);
      lengths[next] = 0;
      ++next;
    } else {
      auto it = caches.begin();
      std::advance(it, rng() % caches.size());
      const int id = it->first;
      KvCache& c = *it->second;
      if (action < 8) {
        const int64_t n = int64_t(rng() % 9);
        const int64_t free_before = pool->free_blocks();
        if (lengths[id] + n > 60) {
          EXPECT_THROW(c.reserve_more(n), Error);
        } else if (c.blocks_needed(n) > free_before) {
          try {
            c.reserve_more(n);
            ADD_FAILURE() << "a pool with too few blocks granted them";
          } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
          }
          EXPECT_EQ(pool->free_blocks(), free_before);  // unchanged
          ++refusals;
        } else {
          c.reserve_more(n);
          // Tag every new row with (cache, position) to check no two caches share a row.
          for (int64_t p = lengths[id]; p < lengths[id] + n; ++p)
            for (int l = 0; l < 3; ++l) c.key_row(l, p)[0] = float(id * 1000 + p), c.value_row(l, p)[5] = -float(id * 1000 + p);
          c.advance(n);
          lengths[id] += n;
        }
      } else if (action == 8) {
        c.clear();
        lengths[id] = 0;
      } else {
        caches.erase(it);
        lengths.erase(id);
      }
    }
    int64_t held = 0;
    std::set<int32_t> seen;
    for (const auto& [id, c] : caches) {
      EXPECT_EQ(c->length(), lengths[id]);
      EXPECT_EQ(int64_t(c->block_table().size()), (lengths[id] + block_tokens - 1) / block_tokens);
      for (const int32_t b : c->block_table()) EXPECT_TRUE(seen.insert(b).second) << "block " << b << " held twice";
      held += int64_t(c->block_table().size());
      for (int64_t p = 0; p < c->length(); ++p)
        ASSERT_EQ(c->key_row(2, p)[0], float(id * 1000 + p)) << "cache " << id << " position " << p;
    }
    ASSERT_EQ(held + pool->free_blocks(), blocks);
  }
  EXPECT_GT(refusals, 0);  // the workload did run the pool dry
  caches.clear();
  EXPECT_EQ(pool->free_blocks(), blocks);
}

TEST(KvCache, PastItsCapacityIsAnInvalidArgument) {
  auto pool = std::make_shared<KvBlockPool>(1, 4, 4, 10);
  KvCache c(pool, 6);
  c.reserve_more(6);
  c.advance(6);
  try {
    c.reserve_more(1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(KvCache, CopiesTakeBlocksOfTheirOwn) {
  auto pool = std::make_shared<KvBlockPool>(2, 4, 4, 6);
  KvCache a(pool, 20);
  a.reserve_more(9);
  for (int64_t p = 0; p < 9; ++p) a.key_row(1, p)[3] = float(p);
  a.advance(9);
  KvCache b = a;
  EXPECT_EQ(pool->used_blocks(), 6);
  EXPECT_NE(a.generation(), b.generation());
  for (int64_t p = 0; p < 9; ++p) EXPECT_EQ(b.key_row(1, p)[3], float(p));
  EXPECT_THROW(KvCache{b}, Error);  // no blocks left for a third
  KvCache moved = std::move(a);
  EXPECT_EQ(moved.length(), 9);
  EXPECT_EQ(pool->used_blocks(), 6);
}

TEST(KvCache, APrivateCacheIsOneContiguousRun) {
  KvCache c(2, 2, 4, 12);
  c.reserve_more(12);
  c.advance(12);
  EXPECT_TRUE(c.contiguous());
  EXPECT_EQ(c.key_row(1, 7), c.keys(1) + 7 * 8);
  KvCache copy = c;  // a private copy: its own pool
  EXPECT_TRUE(copy.contiguous());
  EXPECT_NE(copy.key_row(0, 0), c.key_row(0, 0));
}

// Attention over rows scattered in blocks (out of order, some consecutive) is the same bits as
// over the same rows in one run, for every window and grouping.
TEST(KvCache, PagedAttentionEqualsContiguousBitForBit) {
  std::mt19937 rng(11);
  std::normal_distribution<float> d;
  for (const int64_t block_tokens : {1, 3, 16}) {
    const int64_t heads = 4, kv_heads = 2, hd = 8, row = kv_heads * hd, start = 37, n = 5, total = start + n;
    const int64_t blocks = 2 * ((total + block_tokens - 1) / block_tokens) + 4;  // a third stays taken
    auto pool = std::make_shared<KvBlockPool>(1, row, block_tokens, blocks);
    // Scatter: take every block, release a shuffled half, so the cache's blocks interleave.
    std::vector<int32_t> all;
    for (int64_t b = 0; b < blocks; ++b) all.push_back(*pool->allocate());
    std::shuffle(all.begin(), all.end(), rng);
    for (size_t i = 0; i < all.size(); ++i)
      if (i % 3 != 0) pool->release(all[i]);
    KvCache paged(pool, total);
    paged.reserve_more(total);
    paged.advance(total);
    EXPECT_FALSE(paged.contiguous());
    std::vector<float> k(size_t(total * row)), v(k.size()), q(size_t(n * heads * hd));
    for (float& x : k) x = d(rng);
    for (float& x : v) x = d(rng);
    for (float& x : q) x = d(rng);
    for (int64_t p = 0; p < total; ++p) {
      std::copy_n(k.data() + p * row, row, paged.key_row(0, p));
      std::copy_n(v.data() + p * row, row, paged.value_row(0, p));
    }
    for (const int64_t window : {0, 4, 20}) {
      std::vector<float> want(q.size()), got(q.size());
      cpu::attention(q.data(), k.data(), v.data(), n, start, heads, kv_heads, hd, 0.3f, want.data(), window);
      cpu::attention(q.data(), paged.blocks(0), n, start, heads, kv_heads, hd, 0.3f, got.data(), window);
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << "block " << block_tokens << " window " << window;
    }
  }
}

// Many sequences in one call (one parallel loop over all their jobs) give each the bits it gets
// alone, including a sequence with no tokens and head masks.
TEST(KvCache, BatchedAttentionEqualsEachSequenceAlone) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d;
  const int64_t heads = 4, kv_heads = 2, hd = 8, row = kv_heads * hd;
  auto pool = std::make_shared<KvBlockPool>(1, row, 4, 64);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{9, 3}, {0, 0}, {30, 1}, {2, 5}};  // (start, tokens)
  std::vector<KvCache> caches;
  std::vector<std::vector<float>> qs, alone;
  std::vector<std::vector<uint8_t>> masks;
  for (const auto& [start, n] : shapes) {
    caches.emplace_back(pool, 64);
    caches.back().reserve_more(start + n);
    for (int64_t p = 0; p < start + n; ++p)
      for (int64_t i = 0; i < row; ++i) caches.back().key_row(0, p)[i] = d(rng), caches.back().value_row(0, p)[i] = d(rng);
    caches.back().advance(start + n);
    qs.emplace_back(size_t(n * heads * hd));
    for (float& x : qs.back()) x = d(rng);
    masks.emplace_back(size_t(n * heads));
    for (uint8_t& m : masks.back()) m = uint8_t(rng() % 3 != 0);
    alone.emplace_back(qs.back().size());
    if (n > 0)
      cpu::attention(qs.back().data(), caches.back().blocks(0), n, start, heads, kv_heads, hd, 0.25f, alone.back().data(), 6,
                     masks.back().data());
  }
  std::vector<std::vector<float>> together(shapes.size());
  std::vector<cpu::AttentionSequence> batch;
  for (size_t i = 0; i < shapes.size(); ++i) {
    together[i].assign(qs[i].size(), -1.0f);
    batch.push_back({qs[i].data(), caches[i].blocks(0), shapes[i].second, shapes[i].first, together[i].data(), masks[i].data()});
  }
  cpu::attention(batch, heads, kv_heads, hd, 0.25f, 6);
  for (size_t i = 0; i < shapes.size(); ++i)  // (an empty sequence has no data to compare: memcmp wants pointers)
    EXPECT_TRUE(alone[i].empty() || std::memcmp(together[i].data(), alone[i].data(), alone[i].size() * sizeof(float)) == 0)
        << "sequence " << i;
}

}  // namespace
}  // namespace moe::model
