// tests/scheduler: RequestTable, the serving state — block and aging books of apply(plan), the
// stop rules of apply(outputs), and plans it refuses without changing anything.
#include "scheduler/request_table.h"

#include <gtest/gtest.h>

namespace rme {
namespace {

NewRequest prompt(int n, int expert, int max_new = 8, std::vector<int> stop = {}) {
  NewRequest r;
  r.prompt.assign(n, 7);
  r.experts.assign(n, expert);
  r.weights.assign(n, 1.0f);
  r.stop = {max_new, false, std::move(stop), nullptr};
  return r;
}

TokenEvent sampled(int64_t id, int token, int expert) {
  TokenEvent e;
  e.id = id;
  e.token = token;
  e.experts = {expert};
  e.weights = {1.0f};
  return e;
}

TEST(RequestTableTest, ApplyPlanKeepsTheBlockAndAgingBooks) {
  RequestTable t(6, 4, 1);
  const int64_t a = t.add(prompt(10, 2), 0);
  const int64_t b = t.add(prompt(4, 3), 0);
  const int64_t c = t.add(prompt(9, 1), 0);
  StepPlan first;
  first.chunks = {{b, 4}, {c, 8}};
  ASSERT_TRUE(t.apply(first, 1).ok());
  EXPECT_EQ(t.free_blocks(), 6 - 1 - 2);
  EXPECT_EQ(t.n_running(), 2);
  StepPlan p;
  p.chunks = {{a, 6}, {c, 1}};  // c finishes its prompt: 9 positions need a third block
  p.preempted = {b};
  auto chunks = t.apply(p, 7);
  ASSERT_TRUE(chunks.ok()) << chunks.status().message();
  ASSERT_EQ(chunks->size(), 2u);
  EXPECT_EQ((*chunks)[0].pos, 0);
  EXPECT_FALSE((*chunks)[0].want_logits);
  EXPECT_EQ((*chunks)[1].pos, 8);
  EXPECT_TRUE((*chunks)[1].want_logits);
  EXPECT_EQ(t.free_blocks(), 6 - 2 - 3);  // b gave its block back
  const Request& ra = *t.find(a);
  EXPECT_EQ(ra.n_computed, 6);
  EXPECT_EQ(ra.blocks.size(), 2u);
  EXPECT_EQ(ra.waiting_since, 7);
  EXPECT_EQ(t.find(b)->n_computed, 0);  // preempted: recomputes from scratch
  EXPECT_EQ(t.find(b)->waiting_since, 1);
  const auto infos = t.infos();
  ASSERT_EQ(infos.size(), 3u);
  EXPECT_EQ(infos[0].pending_experts, std::vector<int>(4, 2));
  EXPECT_EQ(infos[1].pending(), 4);
  EXPECT_EQ(infos[2].pending(), 0);  // its next token is the step's output
  StepPlan next;
  next.chunks = {{a, 4}, {b, 2}};
  EXPECT_EQ(t.plan_experts(next), (std::vector<int>{2, 3}));
}

TEST(RequestTableTest, RefusesAPlanItCannotHonourAndChangesNothing) {
  RequestTable t(2, 4, 1);
  const int64_t a = t.add(prompt(12, 0), 0);
  StepPlan too_many_blocks;
  too_many_blocks.chunks = {{a, 12}};
  EXPECT_FALSE(t.apply(too_many_blocks, 1).ok());
  StepPlan too_many_tokens;
  too_many_tokens.chunks = {{a, 13}};
  EXPECT_FALSE(t.apply(too_many_tokens, 1).ok());
  EXPECT_EQ(t.free_blocks(), 2);
  EXPECT_EQ(t.find(a)->n_computed, 0);
  StepPlan cancelled;  // a request removed between schedule and apply is skipped
  cancelled.chunks = {{a + 1, 3}};
  auto chunks = t.apply(cancelled, 1);
  ASSERT_TRUE(chunks.ok());
  EXPECT_TRUE(chunks->empty());
}

TEST(RequestTableTest, ApplyOutputsFollowsTheStopRules) {
  RequestTable t(16, 4, 1);
  const int64_t a = t.add(prompt(3, 0, 2), 0);       // ends by length after 2 tokens
  const int64_t b = t.add(prompt(3, 0, 8, {5}), 0);  // token 5 stops it
  const int64_t c = t.add(prompt(3, 0, 8), 0);       // routing failed
  NewRequest ignore = prompt(3, 0, 8, {5});
  ignore.stop.ignore_eos = true;
  const int64_t d = t.add(ignore, 0);
  StepPlan p;
  for (int64_t id : {a, b, c, d}) p.chunks.push_back({id, 3});
  ASSERT_TRUE(t.apply(p, 0).ok());
  std::vector<TokenEvent> out = {sampled(a, 4, 1), sampled(b, 5, 1), sampled(c, 4, 1),
                                 sampled(d, 5, 2)};
  out[2].token = -1;
  out[2].finish = FinishReason::kError;
  out[2].error = internal_error("routing the sampled token: x");
  t.apply(out);
  EXPECT_EQ(out[0].finish, FinishReason::kNone);
  EXPECT_EQ(out[1].finish, FinishReason::kStop);
  EXPECT_EQ(out[1].token, -1);  // the stop token is not output
  EXPECT_EQ(out[2].finish, FinishReason::kError);
  EXPECT_EQ(out[3].finish, FinishReason::kNone);  // ignore_eos: 5 is a token like any other
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.find(a)->tokens, (std::vector<int>{7, 7, 7, 4}));
  EXPECT_EQ(t.find(d)->experts, (std::vector<int>{0, 0, 0, 2}));
  StepPlan q;
  q.chunks = {{a, 1}};
  ASSERT_TRUE(t.apply(q, 1).ok());
  std::vector<TokenEvent> last = {sampled(a, 9, 0)};
  t.apply(last);
  EXPECT_EQ(last[0].finish, FinishReason::kLength);
  EXPECT_EQ(last[0].token, 9);  // the max_new-th token is output
  EXPECT_EQ(t.find(a), nullptr);
  EXPECT_EQ(t.free_blocks(), 16 - 1);  // only d holds a block
}

// Stops after a given token, recording every token it sees (as server's CompletionText does
// with stop strings over the text).
class StopAfter : public TokenWatcher {
 public:
  explicit StopAfter(int token) : token_(token) {}
  bool stops_after(const TokenEvent& e) override {
    seen.push_back(e.token);
    return e.token == token_;
  }
  std::vector<int> seen;

 private:
  int token_;
};

TEST(RequestTableTest, AWatcherEndsItsRequestAfterTheTokenAndOutranksTheLengthRule) {
  RequestTable t(16, 4, 1);
  auto wa = std::make_shared<StopAfter>(6), wb = std::make_shared<StopAfter>(6);
  NewRequest ra = prompt(3, 0, 8, {5}), rb = prompt(3, 0, 2, {5});  // b: max_new 2
  ra.stop.watch = wa;
  rb.stop.watch = wb;
  const int64_t a = t.add(ra, 0), b = t.add(rb, 0);
  StepPlan p;
  p.chunks = {{a, 3}, {b, 3}};
  ASSERT_TRUE(t.apply(p, 0).ok());
  std::vector<TokenEvent> first = {sampled(a, 4, 1), sampled(b, 4, 1)};
  t.apply(first);
  EXPECT_EQ(first[0].finish, FinishReason::kNone);
  StepPlan q;
  q.chunks = {{a, 1}, {b, 1}};
  ASSERT_TRUE(t.apply(q, 1).ok());
  std::vector<TokenEvent> second = {sampled(a, 6, 1), sampled(b, 6, 1)};
  t.apply(second);
  EXPECT_EQ(second[0].finish, FinishReason::kStop);
  EXPECT_EQ(second[0].token, 6);                     // a stop string's token is output
  EXPECT_EQ(second[1].finish, FinishReason::kStop);  // not kLength, though it was the 2nd
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.free_blocks(), 16);
  EXPECT_EQ(wa->seen, (std::vector<int>{4, 6}));
  // A stop id ends the request before the watcher sees its token.
  auto wc = std::make_shared<StopAfter>(6);
  NewRequest rc = prompt(3, 0, 8, {5});
  rc.stop.watch = wc;
  const int64_t c = t.add(rc, 2);
  StepPlan r;
  r.chunks = {{c, 3}};
  ASSERT_TRUE(t.apply(r, 2).ok());
  std::vector<TokenEvent> third = {sampled(c, 5, 1)};
  t.apply(third);
  EXPECT_EQ(third[0].finish, FinishReason::kStop);
  EXPECT_EQ(third[0].token, -1);
  EXPECT_TRUE(wc->seen.empty());
}

TEST(RequestTableTest, ATokenWithoutItsRoutingFailsItsRequest) {
  RequestTable t(4, 4, 1);
  const int64_t a = t.add(prompt(2, 0), 0);
  StepPlan p;
  p.chunks = {{a, 2}};
  ASSERT_TRUE(t.apply(p, 0).ok());
  std::vector<TokenEvent> out = {sampled(a, 3, 0)};
  out[0].experts.clear();
  t.apply(out);
  EXPECT_EQ(out[0].finish, FinishReason::kError);
  EXPECT_FALSE(out[0].error.ok());
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.free_blocks(), 4);
}

TEST(RequestTableTest, DenseRequestsHaveNoExperts) {
  RequestTable t(4, 4, 0);
  NewRequest r;
  r.prompt = {1, 2, 3};
  const int64_t a = t.add(r, 0);
  EXPECT_EQ(t.infos()[0].pending_experts, std::vector<int>(3, -1));
  StepPlan p;
  p.chunks = {{a, 3}};
  EXPECT_TRUE(t.plan_experts(p).empty());
  ASSERT_TRUE(t.apply(p, 0).ok());
  std::vector<TokenEvent> out(1);
  out[0].id = a;
  out[0].token = 4;
  t.apply(out);
  EXPECT_EQ(out[0].finish, FinishReason::kNone);
  EXPECT_EQ(t.find(a)->tokens.size(), 4u);
}

}  // namespace
}  // namespace rme
