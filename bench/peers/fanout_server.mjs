// The socket.io 4 reference server of bench/fanout.py: each socket joins the room named in its
// handshake auth ({room}); a `chat:message` is relayed to the room's other sockets and acked.
// Nothing is stored, nothing is checked.
//
// Usage: node fanout_server.mjs <port>     prints "listening <port>" once it accepts connections;
// exits on SIGTERM or when its stdin closes.

import { createServer } from "node:http";
import { Server } from "socket.io";

const http = createServer();
const io = new Server(http, { serveClient: false });

io.on("connection", (socket) => {
  const room = String(socket.handshake.auth?.room ?? "");
  socket.join(room);
  socket.on("chat:message", (payload, ack) => {
    socket.to(room).emit("chat:message", payload);
    if (typeof ack === "function") {
      ack({ ok: true });
    }
  });
});

http.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  process.stdout.write(`listening ${http.address().port}\n`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.stdin.on("end", stop); // the bench went away
process.stdin.resume();
