// Drive the official socket.io-client against the appliance and report what it observes.
//
// Usage: node sio_client.mjs '<scenario JSON>'      or      echo '<scenario JSON>' | node sio_client.mjs
//
// Scenario (all keys but `url` optional):
//   {
//     "url": "http://127.0.0.1:8080",
//     "auth": {"token": "<access JWT>"},        // omitted or null: connect without auth
//     "transports": ["websocket"],
//     "emits": [{"event": "presence:list", "data": {}, "timeout_ms": 5000}],
//     "until": ["user_online"],                 // after the emits, wait until each was received
//     "timeout_ms": 15000                       // whole run
//   }
//
// Output: one JSON object per line on stdout, in the order things happened:
//   {"type":"connect","id":...}
//   {"type":"connect_error","message":...,"data":...}
//   {"type":"event","event":...,"data":...,"args":[...]}
//   {"type":"ack","event":...,"result":...}  /  {"type":"ack_error","event":...,"message":...}
//   {"type":"disconnect","reason":...,"description":...}
//   {"type":"timeout","missing":[...]}
//   {"type":"done"}
// Exit status: 0 when the scenario ran to its end (including a refused connection), 1 on timeout,
// 2 on a bad scenario.

import { io } from "socket.io-client";

function out(record) {
  process.stdout.write(`${JSON.stringify(record)}\n`);
}

async function readScenario() {
  if (process.argv.length > 2) {
    return JSON.parse(process.argv[2]);
  }
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function describeError(err) {
  if (err === undefined || err === null) {
    return null;
  }
  return { message: err.message ?? String(err), type: err.type, description: err.description };
}

async function main() {
  let scenario;
  try {
    scenario = await readScenario();
    if (typeof scenario !== "object" || scenario === null || typeof scenario.url !== "string") {
      throw new Error("scenario must be an object with a string `url`");
    }
  } catch (err) {
    out({ type: "bad_scenario", message: err.message });
    process.exitCode = 2;
    return;
  }

  const emits = scenario.emits ?? [];
  const waiting = new Set(scenario.until ?? []);
  const seen = new Set();
  const options = {
    transports: scenario.transports ?? ["websocket"],
    reconnection: false,
    forceNew: true,
  };
  if (scenario.auth !== undefined && scenario.auth !== null) {
    options.auth = scenario.auth;
  }

  const socket = io(scenario.url, options);
  let finished = false;
  let notifyEvent = () => {};

  const finish = (code) => {
    if (finished) {
      return;
    }
    finished = true;
    clearTimeout(timer);
    if (socket.connected) {
      socket.disconnect(); // emits "disconnect" with "io client disconnect" synchronously
    } else {
      socket.close();
    }
    out({ type: "done" });
    process.exitCode = code;
    // Nothing should keep node alive now; make sure of it without cutting stdout short.
    setTimeout(() => process.exit(code), 2000).unref();
  };

  const timer = setTimeout(() => {
    out({ type: "timeout", missing: [...waiting].filter((name) => !seen.has(name)) });
    finish(1);
  }, scenario.timeout_ms ?? 15000);

  socket.on("connect", () => {
    out({ type: "connect", id: socket.id });
    runEmits().catch((err) => {
      out({ type: "script_error", message: err.message });
      finish(1);
    });
  });

  socket.on("connect_error", (err) => {
    out({ type: "connect_error", message: err.message, data: err.data ?? null });
    // A refusal by the server is final (the socket does not retry it); so is a transport
    // failure with reconnection off.
    finish(0);
  });

  socket.on("disconnect", (reason, details) => {
    out({ type: "disconnect", reason, description: describeError(details) });
    if (!finished) {
      finish(0);
    }
  });

  socket.onAny((event, ...args) => {
    out({ type: "event", event, data: args.length > 0 ? args[0] : null, args });
    seen.add(event);
    notifyEvent();
  });

  async function runEmits() {
    for (const step of emits) {
      if (finished) {
        return;
      }
      try {
        const result = await socket
          .timeout(step.timeout_ms ?? 5000)
          .emitWithAck(step.event, ...(step.args ?? [step.data ?? {}]));
        out({ type: "ack", event: step.event, result });
      } catch (err) {
        out({ type: "ack_error", event: step.event, message: err.message });
      }
    }
    await new Promise((resolve) => {
      const check = () => {
        if ([...waiting].every((name) => seen.has(name))) {
          resolve();
        }
      };
      notifyEvent = check;
      check();
    });
    finish(0);
  }
}

main().catch((err) => {
  out({ type: "script_error", message: err.stack ?? String(err) });
  process.exitCode = 1;
});
