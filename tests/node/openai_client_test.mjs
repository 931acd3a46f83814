// tests/node: the official `openai` npm client against a running `rme serve` (started by
// tests/scripts/openai_client_test.sh): models, completions, chat, streaming with usage, stop,
// logprobs, an aborted stream followed by a normal request, and the 400s for n > 1, tools and
// JSON mode. Usage: node openai_client_test.mjs BASE_URL API_KEY
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import {readFileSync} from 'node:fs';

const version = JSON.parse(
    readFileSync(new URL('./node_modules/openai/package.json', import.meta.url))).version;

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({baseURL, apiKey, maxRetries: 0, timeout: 60_000});
const prompt = 'Once upon a time';
const messages = [{role: 'user', content: 'Tell me a story about a cat.'}];
const greedy = {temperature: 0, max_tokens: 24};

const cases = [];
const test = (name, fn) => cases.push({name, fn});

async function expectStatus(status, fn) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, `not an APIError: ${e}`);
    assert.equal(e.status, status, e.message);
    return e;
  }
  assert.fail(`expected HTTP ${status}, the request succeeded`);
}

async function completionText(params) {
  const r = await client.completions.create({model: 'rme', prompt, ...greedy, ...params});
  return r.choices[0];
}

async function metric(name) {
  const res = await fetch(baseURL.replace(/\/v1$/, '') + '/metrics',
                          {headers: {Authorization: `Bearer ${apiKey}`}});
  const line = (await res.text()).split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.split(' ')[1]) : 0;
}

test('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.equal(ids.length, 1);
  assert.ok(ids[0].length > 0);
});

test('a wrong API key is an AuthenticationError', async () => {
  const bad = new OpenAI({baseURL, apiKey: 'wrong', maxRetries: 0});
  const e = await expectStatus(401, () => bad.models.list());
  assert.ok(e instanceof OpenAI.AuthenticationError);
});

let reference;  // the greedy completion every other completion case compares with
test('completions: text, finish reason and usage', async () => {
  const r = await client.completions.create({model: 'rme', prompt, ...greedy});
  assert.equal(r.object, 'text_completion');
  const c = r.choices[0];
  assert.equal(typeof c.text, 'string');
  assert.ok(c.text.length > 0);
  assert.ok(['length', 'stop'].includes(c.finish_reason), c.finish_reason);
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= greedy.max_tokens);
  if (c.finish_reason === 'length') assert.equal(r.usage.completion_tokens, greedy.max_tokens);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  reference = c.text;
  assert.equal((await completionText({})).text, reference, 'greedy decoding is repeatable');
});

test('chat: an assistant message', async () => {
  const r = await client.chat.completions.create({model: 'rme', messages, ...greedy});
  assert.equal(r.object, 'chat.completion');
  const m = r.choices[0].message;
  assert.equal(m.role, 'assistant');
  assert.equal(typeof m.content, 'string');
  assert.ok(r.usage.completion_tokens > 0);
});

test('streaming completions: the deltas join to the same text, usage comes last', async () => {
  const stream = await client.completions.create(
      {model: 'rme', prompt, ...greedy, stream: true, stream_options: {include_usage: true}});
  let text = '', usage = null, finish = null, after_usage = 0;
  for await (const chunk of stream) {
    if (usage) ++after_usage;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(text, reference);
  assert.ok(['length', 'stop'].includes(finish));
  assert.ok(usage, 'no usage chunk');
  assert.equal(after_usage, 0, 'chunks after the usage chunk');
  assert.ok(usage.completion_tokens > 0);
});

test('streaming chat: role first, content deltas, usage', async () => {
  const stream = await client.chat.completions.create(
      {model: 'rme', messages, ...greedy, stream: true, stream_options: {include_usage: true}});
  let text = '', role = null, usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = role ?? c.delta.role;
      text += c.delta.content ?? '';
    }
  }
  const whole = await client.chat.completions.create({model: 'rme', messages, ...greedy});
  assert.equal(role, 'assistant');
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('stop: the text ends before the first stop string, finish reason stop', async () => {
  const mid = Math.floor(reference.length / 2);
  const stop = reference.slice(mid, mid + 3);
  const expected = reference.slice(0, reference.indexOf(stop));
  const c = await completionText({stop: [stop]});
  assert.equal(c.text, expected);
  assert.equal(c.finish_reason, 'stop');
  const s = await client.completions.create(
      {model: 'rme', prompt, ...greedy, stop, stream: true});
  let text = '', finish = null;
  for await (const chunk of s)
    for (const ch of chunk.choices) {
      text += ch.text;
      finish = ch.finish_reason ?? finish;
    }
  assert.equal(text, expected);
  assert.equal(finish, 'stop');
});

test('logprobs: completions (tokens, offsets, top) and chat (content)', async () => {
  const c = await completionText({logprobs: 2});
  const lp = c.logprobs;
  assert.equal(lp.tokens.join(''), c.text);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 0; i < lp.tokens.length; ++i) {
    assert.ok(lp.token_logprobs[i] <= 0);
    const top = Object.values(lp.top_logprobs[i]);
    assert.ok(top.length >= 1 && top.length <= 2);
    // greedy: the chosen token is the most likely one
    assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs[i]) < 1e-4);
  }
  const r = await client.chat.completions.create(
      {model: 'rme', messages, ...greedy, logprobs: true, top_logprobs: 3});
  const content = r.choices[0].logprobs.content;
  assert.equal(content.map((t) => t.token).join(''), r.choices[0].message.content);
  for (const t of content) {
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(Array.isArray(t.bytes));
  }
});

test('an aborted stream, then a normal request', async () => {
  const before = await metric('rme_requests_total{status="cancelled"}');
  const stream = await client.completions.create(
      {model: 'rme', prompt, temperature: 0, max_tokens: 200, stream: true});
  let n = 0;
  for await (const chunk of stream) {
    if (chunk.choices.length && ++n === 2) break;  // leaving the loop aborts the request
  }
  assert.equal(n, 2);
  assert.equal((await completionText({})).text, reference);
  let after = before;
  for (let i = 0; i < 100 && after === before; ++i) {
    await new Promise((r) => setTimeout(r, 50));
    after = await metric('rme_requests_total{status="cancelled"}');
  }
  assert.equal(after, before + 1, 'the server did not cancel the abandoned request');
});

test('clear 400s: n > 1, tools, JSON mode', async () => {
  for (const [field, extra] of [
           ['n', {n: 2}],
           ['tools', {tools: [{type: 'function', function: {name: 'f', parameters: {}}}]}],
           ['response_format', {response_format: {type: 'json_object'}}],
       ]) {
    const e = await expectStatus(
        400, () => client.chat.completions.create({model: 'rme', messages, ...greedy, ...extra}));
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.ok(e.message.includes(field), `'${e.message}' does not name ${field}`);
  }
  const e = await expectStatus(400, () => client.completions.create({model: 'rme', prompt, n: 3}));
  assert.ok(e.message.includes("'n'"), e.message);
});

let failed = 0;
for (const {name, fn} of cases) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    ++failed;
    console.log(`FAIL ${name}\n     ${e.stack ?? e}`);
  }
}
console.log(`openai ${version}: ${cases.length - failed}/${cases.length} passed`);
process.exit(failed ? 1 : 0);
