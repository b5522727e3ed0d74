// End-to-end: the official `openai` npm client against a real `turbine serve` (a tiny random
// model, two in-process workers). Run by CTest (tests/e2e/python_tests.cmake) as
//   TURBINE_BIN=build/bin/turbine TURBINE_E2E_MODEL=build/e2e/tiny-model node --test openai.test.mjs
// The server is started with --port 0; it logs "listening on http://HOST:PORT" on stderr.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';

const BIN = process.env.TURBINE_BIN;
const MODEL_DIR = process.env.TURBINE_E2E_MODEL;

// Starts `turbine serve` on a free port; resolves once it listens.
async function startServer(extra = [], workers = 2) {
  assert.ok(BIN && MODEL_DIR, 'set TURBINE_BIN and TURBINE_E2E_MODEL');
  const args = ['serve', '--model', MODEL_DIR, '--port', '0', '--workers', String(workers), '--threads', '2',
    '--max-model-len', '512', '--kv-cache-memory', '8MiB', ...extra];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`turbine serve did not start in 60 s:\n${log}`)), 60_000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`turbine serve exited with ${code}:\n${log}`));
    });
  });
  return {
    url,
    log: () => log,
    // SIGTERM: graceful shutdown, exit code 0.
    async stop() {
      proc.kill('SIGTERM');
      return exited;
    },
  };
}

const client = (server, opts = {}) =>
  new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000, ...opts });

const collect = async (stream) => {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
};

describe('turbine serve with the openai client', () => {
  let server;
  let openai;
  let model;

  before(async () => {
    // The output parsers on: a random model writes no <think> or <tool_call>, so every answer
    // below is plain content whatever they do; they must not change it.
    server = await startServer(['--enable-auto-tool-choice', '--tool-call-parser', 'hermes',
      '--reasoning-parser', 'qwen3']);
    openai = client(server);
    const models = await openai.models.list();
    assert.equal(models.data.length, 1);
    model = models.data[0].id;
  });

  after(async () => {
    if (!server) return;
    const { code } = await server.stop();
    assert.equal(code, 0, `exit code after SIGTERM\n${server.log()}`);
    assert.match(server.log(), /shutting down/);
  });

  const chatBody = (content, extra = {}) => ({
    model, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content }],
    temperature: 0, max_tokens: 12, ignore_eos: true, ...extra,
  });

  test('chat: non-streaming and streaming give the same greedy text, with usage', async () => {
    const body = chatBody('Say something about turbines.');
    const r = await openai.chat.completions.create(body);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.model, model);
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.choices.length, 1);
    const choice = r.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.equal(choice.finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 12);
    assert.ok(r.usage.prompt_tokens > 10);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);

    const chunks = await collect(await openai.chat.completions.create(
      { ...body, stream: true, stream_options: { include_usage: true } }));
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, choice.message.content);
    const finishes = chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean);
    assert.deepEqual(finishes, ['length']);
    const usage = chunks.at(-1).usage;
    assert.equal(chunks.at(-1).choices.length, 0);
    assert.equal(usage.completion_tokens, 12);
    assert.equal(usage.prompt_tokens, r.usage.prompt_tokens);
  });

  // A random model writes no tool calls; what is checked here is that the client's tool
  // requests (definitions, an assistant's calls, the tool's answer) go through the model's real
  // chat template, and that streamed and whole answers agree. Tool calls coming back are tested
  // against a scripted backend in frontend_openai_server_test.
  test('tools: a tool conversation through the real template, whole and streamed', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather now',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const messages = [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'get_weather', arguments: JSON.stringify({ city: 'Paris' }) } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '18 C, sunny' },
    ];
    const body = { model, messages, tools, temperature: 0, max_tokens: 8, ignore_eos: true };
    const r = await openai.chat.completions.create(body);
    const choice = r.choices[0];
    assert.ok(['length', 'tool_calls'].includes(choice.finish_reason), choice.finish_reason);
    assert.ok(r.usage.prompt_tokens > 20, `prompt_tokens ${r.usage.prompt_tokens}`);
    const chunks = await collect(await openai.chat.completions.create({ ...body, stream: true }));
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, choice.message.content ?? '');
    // tool_choice 'required': guided decoding makes even a random model call a tool.
    const enumTools = [{ type: 'function', function: { name: 'get_weather',
      parameters: { type: 'object', properties: { city: { enum: ['Paris', 'Oslo'] } }, required: ['city'] } } }];
    const forced = await openai.chat.completions.create({ model, messages, tools: enumTools,
      tool_choice: 'required', temperature: 0, max_tokens: 450 });
    const call = forced.choices[0].message.tool_calls?.[0];
    assert.equal(call?.function.name, 'get_weather', JSON.stringify(forced.choices[0].message));
    assert.ok(['Paris', 'Oslo'].includes(JSON.parse(call.function.arguments).city), call.function.arguments);
  });

  // Structured output with a random model: the constraint alone makes the answers valid.
  test('structured output: response_format json_schema, guided_choice, guided_grammar', async () => {
    const schema = { type: 'object', properties: { city: { enum: ['Paris', 'Oslo'] }, rain: { type: 'boolean' } },
      required: ['city', 'rain'] };
    const body = { model, messages: [{ role: 'user', content: 'Weather?' }], temperature: 0, max_tokens: 450,
      response_format: { type: 'json_schema', json_schema: { name: 'weather', schema } } };
    const r = await openai.chat.completions.create(body);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const v = JSON.parse(r.choices[0].message.content);
    assert.deepEqual(Object.keys(v), ['city', 'rain']);
    assert.ok(['Paris', 'Oslo'].includes(v.city));
    assert.equal(typeof v.rain, 'boolean');
    const chunks = await collect(await openai.chat.completions.create({ ...body, stream: true }));
    assert.equal(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), r.choices[0].message.content);
    const c = await openai.completions.create({ model, prompt: 'Pick a colour', max_tokens: 20, temperature: 1,
      seed: 3, n: 4, guided_choice: ['red', 'green', 'blue'] });
    for (const choice of c.choices) assert.ok(['red', 'green', 'blue'].includes(choice.text), choice.text);
    // vLLM's guided_grammar, in Lark syntax (left recursion, %import, %ignore) and in GBNF.
    const lark = '?start: sum\n?sum: NUMBER | sum "+" NUMBER\n%import common.NUMBER\n%ignore " "\n';
    const g = await openai.completions.create({ model, prompt: 'Add', max_tokens: 30, temperature: 1, seed: 5, n: 3,
      guided_grammar: lark });
    const num = '(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?';  // common.NUMBER
    for (const choice of g.choices) {
      if (choice.finish_reason === 'stop') assert.match(choice.text, new RegExp(`^ *${num}( *\\+ *${num})* *$`));
      else assert.match(choice.text, /^[ 0-9.eE+-]*$/);
    }
    const yn = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Yes?' }],
      temperature: 0, structured_outputs: { grammar: 'root ::= ("yes" | "no") "!"' } });
    assert.ok(['yes!', 'no!'].includes(yn.choices[0].message.content), yn.choices[0].message.content);
    await assert.rejects(openai.completions.create({ model, prompt: 'x', guided_grammar: 'root ::= "a" | b' }),
      (e) => e.status === 400 && e.param === 'guided_grammar' && /'b' is not defined/.test(e.message));
    await assert.rejects(openai.chat.completions.create({ ...body,
      response_format: { type: 'json_schema', json_schema: { name: 'n', schema: { type: 'number', minimum: 1 } } } }),
      (e) => e.status === 400 && /minimum/.test(e.message));
  });

  test('completions: non-streaming and streaming, n=2', async () => {
    const body = { model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, ignore_eos: true };
    const r = await openai.completions.create(body);
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.ok(r.choices[0].text.length > 0);
    const chunks = await collect(await openai.completions.create({ ...body, stream: true }));
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), r.choices[0].text);

    const echoed = await openai.completions.create({ ...body, echo: true });
    assert.equal(echoed.choices[0].text, body.prompt + r.choices[0].text);

    const two = await openai.completions.create({ ...body, n: 2 });
    assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
    // Greedy: both samples are the single request's text.
    for (const c of two.choices) assert.equal(c.text, r.choices[0].text);
    assert.equal(two.usage.completion_tokens, 20);

    const sampled = await openai.chat.completions.create(chatBody('Two answers, please.', { n: 2, temperature: 1, seed: 5 }));
    assert.deepEqual(sampled.choices.map((c) => c.index).sort(), [0, 1]);
    assert.equal(sampled.usage.completion_tokens, 24);
  });

  test('stop strings end the text before the stop string, finish_reason stop', async () => {
    const body = { model, prompt: 'The quick brown fox', max_tokens: 24, temperature: 0, ignore_eos: true };
    const full = (await openai.completions.create(body)).choices[0].text;
    assert.ok(full.length >= 8, `need some text, got ${JSON.stringify(full)}`);
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    const expected = full.slice(0, full.indexOf(stop));
    const r = await openai.completions.create({ ...body, stop: [stop, 'never-in-the-output-xyz'] });
    assert.equal(r.choices[0].text, expected);
    assert.equal(r.choices[0].finish_reason, 'stop');
    const chunks = await collect(await openai.completions.create({ ...body, stop, stream: true }));
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), expected);
    assert.deepEqual(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean), ['stop']);
  });

  test('logprobs: chat top_logprobs and completions logprobs', async () => {
    const r = await openai.chat.completions.create(chatBody('Logprobs?', { logprobs: true, top_logprobs: 2, max_tokens: 6 }));
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, 6);
    for (const t of content) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
      assert.equal(t.token, t.top_logprobs[0].token);  // greedy picks the most likely token
      assert.ok(Array.isArray(t.bytes));
    }
    const c = await openai.completions.create({ model, prompt: 'abc', max_tokens: 5, temperature: 0, logprobs: 3, ignore_eos: true });
    const lp = c.choices[0].logprobs;
    assert.equal(lp.tokens.length, 5);
    assert.equal(lp.token_logprobs.length, 5);
    assert.equal(lp.top_logprobs.length, 5);
    lp.top_logprobs.forEach((top, i) => {  // the top 3, and the chosen token when not among them
      assert.ok(Object.keys(top).length >= 3 && Object.keys(top).length <= 4, JSON.stringify(top));
      assert.ok(lp.tokens[i] in top, `${lp.tokens[i]} in ${JSON.stringify(top)}`);  // (two ids may share a piece)
    });
    assert.equal(lp.tokens.join(''), c.choices[0].text);
  });

  // lm-evaluation-harness's loglikelihood request: the prompt's tokens scored by echo with
  // max_tokens 0; a second time, with the prompt in the prefix cache, the same scores (it is
  // computed again: cached_tokens 0), and vLLM's prompt_logprobs field agrees with them.
  test('prompt logprobs: echo with max_tokens 0, and the prompt_logprobs field', async () => {
    const ids = [1, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418];
    const score = () => openai.completions.create({ model, prompt: ids, max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
    const a = await score();
    const lp = a.choices[0].logprobs;
    assert.equal(lp.tokens.length, ids.length);
    assert.equal(lp.tokens.join(''), a.choices[0].text);
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    for (let i = 1; i < ids.length; ++i) {
      assert.ok(lp.token_logprobs[i] <= 0 && lp.token_logprobs[i] > -100, `token ${i}: ${lp.token_logprobs[i]}`);
      const n = Object.keys(lp.top_logprobs[i]).length;  // the top 1, and the prompt's token if another
      assert.ok(n === 1 || n === 2, JSON.stringify(lp.top_logprobs[i]));
      assert.ok(Object.values(lp.top_logprobs[i])[0] >= lp.token_logprobs[i] - 1e-6);
      assert.ok(lp.tokens[i] in lp.top_logprobs[i], `${lp.tokens[i]} in ${JSON.stringify(lp.top_logprobs[i])}`);
    }
    assert.equal(a.usage.completion_tokens, 0);
    assert.equal(a.choices[0].finish_reason, 'length');
    const b = await score();
    assert.equal(b.usage.prompt_tokens_details.cached_tokens, 0);
    for (let i = 1; i < ids.length; ++i) assert.ok(Math.abs(b.choices[0].logprobs.token_logprobs[i] - lp.token_logprobs[i]) < 1e-4);
    const c = await openai.completions.create({ model, prompt: ids, max_tokens: 1, temperature: 0, prompt_logprobs: 2 });
    const pl = c.choices[0].prompt_logprobs;
    assert.equal(pl.length, ids.length);
    assert.equal(pl[0], null);
    for (let i = 1; i < ids.length; ++i) {
      const own = pl[i][String(ids[i])];
      assert.ok(own, `position ${i} lacks its prompt token`);
      assert.ok(Math.abs(own.logprob - lp.token_logprobs[i]) < 1e-4);
      assert.ok(own.rank >= 1);
      const ranks = Object.values(pl[i]).map((e) => e.rank);
      assert.ok(ranks.includes(1) && ranks.includes(2));
    }
  });

  test('seed: same seed, same sampled text; other seeds differ', async () => {
    const body = { model, prompt: 'Random story:', max_tokens: 16, temperature: 1.0, ignore_eos: true };
    const a = await openai.completions.create({ ...body, seed: 1234 });
    const b = await openai.completions.create({ ...body, seed: 1234 });
    assert.equal(a.choices[0].text, b.choices[0].text);
    const others = await Promise.all([1, 2, 3].map((s) => openai.completions.create({ ...body, seed: s })));
    assert.ok(others.some((o) => o.choices[0].text !== a.choices[0].text), 'three other seeds all gave the same text');
  });

  test('a repeated prompt reports cached tokens', async () => {
    const prompt = Array.from({ length: 30 }, (_, i) => `line ${i} of a long shared system prompt`).join('\n');
    const body = { model, prompt, max_tokens: 2, temperature: 0 };
    const first = await openai.completions.create(body);
    assert.ok(first.usage.prompt_tokens > 64);
    // Workers report load every 100 ms (and ~2 ms after a change): on a loaded test machine a
    // report taken while the first request still ran could make the router see its worker busy.
    await new Promise((resolve) => setTimeout(resolve, 150));
    const second = await openai.completions.create(body);
    const cached = second.usage.prompt_tokens_details?.cached_tokens ?? 0;
    assert.ok(cached > 0, `cached_tokens ${cached} on the repeat`);
    assert.ok(cached < second.usage.prompt_tokens);
  });

  test('errors: 400 BadRequestError and 404 NotFoundError', async () => {
    await assert.rejects(openai.chat.completions.create(chatBody('x', { temperature: -1 })), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 400);
      assert.equal(e.error?.param ?? e.param, 'temperature');
      return true;
    });
    await assert.rejects(openai.completions.create({ model: 'no-such-model', prompt: 'x' }), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 404);
      return true;
    });
    await assert.rejects(openai.completions.create({ model, prompt: 'x'.repeat(4000), max_tokens: 4 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `${e.constructor.name}: ${e.message}`);
      assert.match(e.message, /512/);
      return true;
    });
  });

  test('64 concurrent streaming clients each get what the request gets alone', async () => {
    const bodies = Array.from({ length: 64 }, (_, i) => chatBody(`Client ${i} asks question number ${i * 7 % 13}.`,
      { max_tokens: 8 + (i % 5) }));
    const alone = [];
    for (const b of bodies) alone.push((await openai.chat.completions.create(b)).choices[0].message.content);
    const together = await Promise.all(bodies.map(async (b) => {
      const chunks = await collect(await openai.chat.completions.create({ ...b, stream: true }));
      assert.deepEqual(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean), ['length']);
      return chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    }));
    for (let i = 0; i < bodies.length; ++i) assert.equal(together[i], alone[i], `client ${i}`);
  });
});

describe('turbine serve --api-key', () => {
  let server;
  before(async () => { server = await startServer(['--api-key', 'sesame'], 1); });
  after(async () => {
    if (!server) return;
    const { code } = await server.stop();
    assert.equal(code, 0);
  });

  test('401 AuthenticationError without the key, 200 with it', async () => {
    await assert.rejects(client(server, { apiKey: 'wrong' }).models.list(), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 401);
      return true;
    });
    const ok = await client(server, { apiKey: 'sesame' }).models.list();
    assert.equal(ok.data.length, 1);
  });
});
