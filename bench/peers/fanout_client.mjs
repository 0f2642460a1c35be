// One load-generator process of bench/fanout.py: many socket.io-client sockets, each sending one
// `chat:message` a second to its room and timing what the others in its room send.
//
// Driven over stdin/stdout, one JSON object a line:
//   in  {"url", "server": "appliance"|"node", "deflate": bool, "connect_concurrency": int,
//        "connect_timeout_ms": int, "clients": [{"index", "token", "room"}]}
//   in  {"cmd": "connect"}                     out {"type": "connected", "ok", "failed",
//                                                   "connected": [index...], "first_failure"}
//   in  {"cmd": "run", "start_ns", "warmup_s", "seconds", "room_sizes": {room: connected}}
//   in  {"cmd": "count"}                       out {"type": "count", "expected", "received",
//                                                   "sent", "answered"}
//   in  {"cmd": "report"}                      out {"type": "report", ... latencies ...}
//   in  {"cmd": "quit"}                        closes every socket, exits
// Times are CLOCK_MONOTONIC nanoseconds (process.hrtime), the clock every process on the machine
// shares: the sender writes its send time into the message text, the receiver subtracts it.

import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const now = () => Number(process.hrtime.bigint());
const out = (record) => process.stdout.write(`${JSON.stringify(record)}\n`);

let config = null;
let clients = [];
let closing = false;
let windowStart = Infinity;
let windowEnd = -Infinity;
let roomSizes = {};
const tally = {
  received: 0, // window messages received (sent inside the window)
  latencies: [], // ms, send -> receipt, window messages
  sent: 0, // window messages sent
  acked: 0,
  ackErrors: 0,
  firstAckError: "",
  ackMs: [], // ms, send -> ack, window messages
  disconnects: 0, // sockets lost after they had connected
  firstDisconnect: "",
};

function onMessage(message) {
  const stamp = Number(String(message?.text ?? "").split(" ")[3]);
  if (stamp >= windowStart && stamp < windowEnd) {
    tally.received += 1;
    tally.latencies.push(Math.round((now() - stamp) / 1e3) / 1e3);
  }
}

function connectOne(client) {
  return new Promise((resolve) => {
    const options = {
      transports: ["websocket"],
      reconnection: false,
      forceNew: true,
      timeout: config.connect_timeout_ms,
      auth: config.server === "node" ? { room: String(client.room) } : { token: client.token },
    };
    if (!config.deflate) {
      options.perMessageDeflate = false;
    }
    const socket = io(config.url, options);
    client.socket = socket;
    socket.on("chat:message", onMessage);
    socket.once("connect", () => {
      client.connected = true;
      resolve(null);
    });
    socket.once("connect_error", (err) => {
      socket.close();
      resolve(String(err?.message ?? err));
    });
    socket.on("disconnect", (reason) => {
      if (client.connected && !closing) {
        tally.disconnects += 1;
        tally.firstDisconnect ||= String(reason);
      }
    });
  });
}

async function connectAll() {
  let next = 0;
  let failed = 0;
  let firstFailure = "";
  const worker = async () => {
    while (next < clients.length) {
      const failure = await connectOne(clients[next++]);
      if (failure !== null) {
        failed += 1;
        firstFailure ||= failure;
      }
    }
  };
  const width = Math.max(1, Math.min(config.connect_concurrency, clients.length));
  await Promise.all(Array.from({ length: width }, worker));
  const connected = clients.filter((c) => c.connected).map((c) => c.index);
  out({ type: "connected", ok: connected.length, failed, connected, first_failure: firstFailure });
}

function send(client) {
  const sentAt = now();
  if (sentAt >= windowEnd) {
    return;
  }
  const seq = client.seq++;
  const counted = sentAt >= windowStart;
  if (counted) {
    client.sentInWindow += 1;
    tally.sent += 1;
  }
  const payload = {
    room_id: client.room,
    text: `fanout ${client.index} ${seq} ${sentAt}`,
    client_msg_id: `f${client.index}n${seq}`,
  };
  client.socket.emit("chat:message", payload, (ack) => {
    if (!counted) {
      return;
    }
    if (ack?.ok) {
      tally.acked += 1;
      tally.ackMs.push(Math.round((now() - sentAt) / 1e3) / 1e3);
    } else {
      tally.ackErrors += 1;
      tally.firstAckError ||= JSON.stringify(ack).slice(0, 300);
    }
  });
}

function schedule(client, at) {
  setTimeout(
    () => {
      send(client);
      if (at + 1e9 < windowEnd) {
        schedule(client, at + 1e9);
      }
    },
    Math.max(0, (at - now()) / 1e6),
  );
}

function run(cmd) {
  const start = Number(cmd.start_ns);
  windowStart = start + cmd.warmup_s * 1e9;
  windowEnd = windowStart + cmd.seconds * 1e9;
  roomSizes = cmd.room_sizes;
  for (const client of clients) {
    if (client.connected) {
      // Spread the senders evenly over the second (golden-ratio offsets by index).
      schedule(client, start + ((client.index * 0.6180339887) % 1) * 1e9);
    }
  }
}

function expected() {
  let total = 0;
  for (const client of clients) {
    total += client.sentInWindow * Math.max(0, (roomSizes[client.room] ?? 1) - 1);
  }
  return total;
}

function handle(cmd) {
  if (cmd.cmd === "connect") {
    connectAll();
  } else if (cmd.cmd === "run") {
    run(cmd);
  } else if (cmd.cmd === "count") {
    out({
      type: "count",
      expected: expected(),
      received: tally.received,
      sent: tally.sent,
      answered: tally.acked + tally.ackErrors,
    });
  } else if (cmd.cmd === "report") {
    out({ type: "report", expected: expected(), ...tally });
  } else if (cmd.cmd === "quit") {
    closing = true;
    for (const client of clients) {
      client.socket?.close();
    }
    process.stdout.write("", () => process.exit(0));
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (config === null) {
    config = JSON.parse(line);
    clients = config.clients.map((c) => ({ ...c, socket: null, connected: false, seq: 0, sentInWindow: 0 }));
    return;
  }
  handle(JSON.parse(line));
});
lines.on("close", () => process.exit(0));
