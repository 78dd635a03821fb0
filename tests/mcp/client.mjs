// Drives `conclave mcp` with the official MCP SDK client (Client + StdioClientTransport), as an
// MCP host such as Claude Desktop does: the server is spawned with the SDK's default, scrubbed
// environment. Used by tests/integration/test_mcp.sh.
//
//   node client.mjs SCENARIO CONCLAVE GROUP ACTOR
//
// Scenarios:
//   session        the whole tool set against a running daemon; prints a JSON summary of the
//                  events it made ({"sent","reply","ack"}) for the shell test to find in the ledger
//   unknown-group  GROUP does not exist: the handshake works, every tool reports it
//   not-running    the daemon is stopped: the tools say so (and name $EXPECT_SOCKET, if set)
// Exits 0 when every check passed; prints what failed on stderr and exits 1 otherwise.
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LATEST_PROTOCOL_VERSION, ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import Ajv2020 from 'ajv/dist/2020.js';

const [scenario, conclave, group, actor] = process.argv.slice(2);
if (!scenario || !conclave || !group || !actor) {
    console.error('usage: node client.mjs session|unknown-group|not-running CONCLAVE GROUP ACTOR');
    process.exit(2);
}

const TOOLS = ['read_inbox', 'send_message', 'reply_to_message', 'ack_message', 'recent_events', 'list_actors'];

function log(...args) {
    console.error('[client]', ...args);
}

async function connect() {
    const transport = new StdioClientTransport({
        command: conclave,
        args: ['mcp', '--group', group, '--actor-id', actor],
        stderr: 'inherit',
    });
    let negotiated;
    transport.setProtocolVersion = (v) => { negotiated = v; };
    const client = new Client({ name: 'conclave-test-client', version: '1.0.0' });
    await client.connect(transport);
    assert.equal(negotiated, LATEST_PROTOCOL_VERSION, 'the server should agree to the SDK\'s latest revision');
    assert.equal(client.getServerVersion()?.name, 'conclave');
    assert.ok(client.getServerCapabilities()?.tools, 'the tools capability is declared');
    const instructions = client.getInstructions() ?? '';
    assert.ok(instructions.includes(`"${actor}"`) && instructions.includes(`"${group}"`),
        `the instructions name the actor and the group: ${instructions}`);
    return client;
}

function text(result) {
    assert.equal(result.content?.[0]?.type, 'text', 'a result starts with a text block');
    return result.content[0].text;
}

// A successful structured call: the text block is the same JSON as structuredContent (the SDK has
// already checked structuredContent against the tool's outputSchema).
async function call(client, name, args) {
    const result = await client.callTool({ name, arguments: args });
    assert.ok(!result.isError, `${name}(${JSON.stringify(args)}) failed: ${result.isError && text(result)}`);
    assert.deepEqual(JSON.parse(text(result)), result.structuredContent, `${name}: text and structuredContent differ`);
    return result.structuredContent;
}

async function callFails(client, name, args, pattern) {
    const result = await client.callTool({ name, arguments: args });
    assert.equal(result.isError, true, `${name}(${JSON.stringify(args)}) should fail, got ${JSON.stringify(result)}`);
    assert.match(text(result), pattern, `${name}: unclear error`);
    assert.equal(result.structuredContent, undefined, 'an error has no structuredContent');
    return text(result);
}

// The schemas are valid JSON Schema 2020-12 (the default dialect of MCP 2025-11-25) under Ajv's
// strict mode, and the server accepts exactly the arguments that Ajv accepts.
async function checkSchemas(client) {
    const { tools } = await client.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [...TOOLS].sort());
    const ajv = new Ajv2020({ strict: true, allErrors: true });
    const validators = {};
    for (const t of tools) {
        assert.ok(t.description && t.description.length > 20, `${t.name}: a description`);
        assert.ok(t.title, `${t.name}: a title`);
        assert.equal(t.inputSchema.type, 'object', `${t.name}: inputSchema is an object schema`);
        assert.equal(t.inputSchema.additionalProperties, false, `${t.name}: no unknown arguments`);
        assert.equal(t.outputSchema?.type, 'object', `${t.name}: an outputSchema`);
        assert.equal(typeof t.annotations?.readOnlyHint, 'boolean', `${t.name}: annotations`);
        validators[t.name] = ajv.compile(t.inputSchema);
        ajv.compile(t.outputSchema);
    }
    const cases = [
        ['read_inbox', {}], ['read_inbox', { limit: 1, mark_read: false }], ['read_inbox', { limit: 0 }],
        ['read_inbox', { limit: 101 }], ['read_inbox', { limit: 2.5 }], ['read_inbox', { limit: '5' }],
        ['read_inbox', { mark_read: 'yes' }], ['read_inbox', { bogus: 1 }],
        ['send_message', {}], ['send_message', { text: '' }], ['send_message', { text: 'x'.repeat(65537) }],
        ['send_message', { text: 'hi', to: [] }], ['send_message', { text: 'hi', to: ['no such!'] }],
        ['send_message', { text: 'hi', to: ['a'.repeat(65)] }], ['send_message', { text: 'hi', to: 'operator' }],
        ['send_message', { text: 'hi', reply_required: 1 }],
        ['reply_to_message', { text: 'hi' }], ['reply_to_message', { event: 'not-an-id', text: 'hi' }],
        ['reply_to_message', { event: 12, text: 'hi' }], ['ack_message', {}], ['ack_message', { event: '01abc' }],
        ['recent_events', { n: 0 }], ['recent_events', { n: 201 }], ['list_actors', { x: 1 }],
    ];
    for (const [name, args] of cases) {
        const ajvSays = validators[name](args);
        const result = await client.callTool({ name, arguments: args });
        const serverRefused = result.isError === true && /^invalid arguments: /.test(text(result));
        assert.equal(serverRefused, !ajvSays,
            `${name}(${JSON.stringify(args).slice(0, 80)}): Ajv says ${ajvSays ? 'valid' : 'invalid'}, the server: ${text(result)}`);
    }
    log(`schemas: ${tools.length} tools, ${cases.length} argument cases agree with Ajv`);
}

async function session(client) {
    await checkSchemas(client);

    // The shell test sent two messages to the actor: one that wants a reply, one an ack.
    let inbox = await call(client, 'read_inbox', { limit: 10 });
    assert.equal(inbox.group, group);
    assert.equal(inbox.actor, actor);
    const question = inbox.messages.find((m) => m.text === 'question for the agent');
    const headsUp = inbox.messages.find((m) => m.text === 'heads up, agent');
    assert.ok(question && headsUp, `the operator's messages are in the inbox: ${JSON.stringify(inbox.messages)}`);
    assert.equal(question.from, 'operator');
    assert.equal(question.reply_required, true);
    assert.equal(headsUp.attention, true);
    assert.deepEqual(question.to, [actor]);
    const owed = (kind, id) => inbox.obligations.some((o) => o.kind === kind && o.event_id === id);
    assert.ok(owed('reply', question.event_id) && owed('ack', headsUp.event_id), 'the actor owes a reply and an ack');
    assert.equal(inbox.marked_read_up_to, null, 'reading without mark_read marks nothing');

    const actors = await call(client, 'list_actors', {});
    assert.equal(actors.you, actor);
    assert.equal(actors.group.id, group);
    assert.ok(actors.actors.some((a) => a.id === 'operator') && actors.actors.some((a) => a.id === actor));

    const sent = await call(client, 'send_message', { text: 'hello from the agent', to: ['operator'], reply_required: true });
    assert.equal(sent.group, group);
    assert.equal(sent.event_id.length, 26);
    const reply = await call(client, 'reply_to_message', { event: question.event_id, text: 'the agent answers' });
    const ack = await call(client, 'ack_message', { event: String(headsUp.seq) }); // by seq this time
    assert.ok(reply.seq > sent.seq && ack.seq > reply.seq);

    // Refusals by the daemon are tool errors the model can read.
    await callFails(client, 'ack_message', { event: headsUp.event_id }, /owe|not_owed|no ack/i);
    await callFails(client, 'reply_to_message', { event: '01ZZZZZZZZZZZZZZZZZZZZZZZZ', text: 'hi' }, /no event/);
    await callFails(client, 'send_message', { text: 'hi', to: ['nobody'] }, /no actor "nobody"/);
    await callFails(client, 'send_message', { text: '' }, /^invalid arguments: text: must not be empty/);

    // An unknown tool is a protocol error (-32602), not a tool result.
    await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }),
        (e) => e instanceof McpError && e.code === ErrorCode.InvalidParams && /unknown tool/.test(e.message));

    inbox = await call(client, 'read_inbox', { mark_read: true });
    assert.deepEqual(inbox.obligations, [], 'the reply and the ack settled what the actor owed');
    assert.ok(inbox.marked_read_up_to === null || inbox.marked_read_up_to >= headsUp.seq);
    inbox = await call(client, 'read_inbox', {});
    assert.deepEqual(inbox.messages, [], 'nothing unread after mark_read');

    const { events } = await call(client, 'recent_events', { n: 10 });
    const mine = events.filter((e) => e.by === actor);
    for (const [what, id] of [['message', sent.event_id], ['reply', reply.event_id], ['ack', ack.event_id]])
        assert.ok(mine.some((e) => e.id === id), `recent_events shows the ${what} by ${actor}`);
    const replyEvent = events.find((e) => e.id === reply.event_id);
    assert.equal(replyEvent.kind, 'chat.message');
    assert.equal(replyEvent.data.reply_to, question.event_id);
    assert.equal(events.find((e) => e.id === ack.event_id).kind, 'chat.ack');

    await client.ping();
    console.log(JSON.stringify({ sent: sent.event_id, reply: reply.event_id, ack: ack.event_id }));
}

async function unknownGroup(client) {
    for (const [name, args] of [['read_inbox', {}], ['list_actors', {}], ['recent_events', {}], ['send_message', { text: 'hi' }]])
        await callFails(client, name, args, new RegExp(`no group "${group}"`));
    log('unknown group: every tool reports it');
}

// EXPECT_SOCKET: the control socket the error must name. Started with the SDK's scrubbed
// environment (no XDG_RUNTIME_DIR), the server must still look where the user service keeps it.
async function notRunning(client) {
    for (const [name, args] of [['read_inbox', {}], ['send_message', { text: 'hi' }], ['list_actors', {}]]) {
        const message = await callFails(client, name, args, /daemon is not running/);
        if (process.env.EXPECT_SOCKET)
            assert.ok(message.includes(`nothing answers on ${process.env.EXPECT_SOCKET})`), `the error names the service's socket: ${message}`);
    }
    log('daemon stopped: the tools say so');
}

const scenarios = { session, 'unknown-group': unknownGroup, 'not-running': notRunning };
if (!scenarios[scenario]) {
    console.error(`unknown scenario ${scenario}`);
    process.exit(2);
}
let client;
try {
    client = await connect();
    await scenarios[scenario](client);
    await client.close();
} catch (e) {
    console.error(`[client] FAILED (${scenario}): ${e.stack || e}`);
    try { await client?.close(); } catch { /* already broken */ }
    process.exit(1);
}
