#!/usr/bin/python3
"""A stand-in for vLLM's KV event publisher, written from vLLM's documented wire format, for the
router's tests (pyzmq + msgpack, Debian's python3-zmq and python3-msgpack).

What it sends is what vLLM's ZmqEventPublisher sends:
  - PUB frames [topic, seq as 8-byte big-endian, msgpack KVEventBatch], seq from 0;
  - KVEventBatch as msgspec writes it (array_like, events tagged by class name):
      [ts, [event...]]      event: ["BlockStored", hashes, parent|None, token_ids, block_size,
                                    lora_id|None, medium] | ["BlockRemoved", hashes, medium]
                                   | ["AllBlocksCleared"]
    block hashes as 32-byte SHA-256 digests of (parent, tokens), like vLLM's sha256 hashing;
  - a ROUTER replay socket: a request [id, "", start_seq] is answered with [id, "", seq, payload]
    for every buffered batch with seq >= start_seq, then [id, "", -1 (8 bytes, signed), ""].

It keeps a prefix cache of full blocks like vLLM's (a block is stored once per medium; only leaf
blocks are evicted) and is driven by JSON lines on stdin; after each it prints "ok <next seq>":
  {"op": "request", "tokens": [...], "medium": "GPU"}   store the blocks not cached yet
  {"op": "evict", "tokens": [...], "blocks": N, "medium": "GPU"}  remove the last N blocks
  {"op": "clear"}                                       AllBlocksCleared
  {"op": "lose_next"}    the next batch is buffered for replay but not sent on the PUB socket
  {"op": "forget"}       empty the replay buffer (as if it had overflowed)
  {"op": "quit"}
At start it prints "ready <pub endpoint> <replay endpoint>".

usage: vllm_publisher.py BLOCK_SIZE TOPIC
"""
import hashlib
import json
import sys
import time

import msgpack
import zmq

END_SEQ = (-1).to_bytes(8, "big", signed=True)


def main():
    block_size = int(sys.argv[1])
    topic = sys.argv[2].encode()
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub_port = pub.bind_to_random_port("tcp://127.0.0.1")
    replay = ctx.socket(zmq.ROUTER)
    replay.setsockopt(zmq.LINGER, 0)
    replay_port = replay.bind_to_random_port("tcp://127.0.0.1")
    print(f"ready tcp://127.0.0.1:{pub_port} tcp://127.0.0.1:{replay_port}", flush=True)

    buffer = []  # (seq, payload)
    seq = 0
    lose_next = False
    cached = {}  # (medium, hash) -> parent hash or None
    children = {}  # (medium, hash) -> count of cached children

    def block_hashes(tokens):
        out, parent = [], None
        for i in range(0, len(tokens) - len(tokens) % block_size, block_size):
            h = hashlib.sha256(repr((parent, tuple(tokens[i:i + block_size]))).encode()).digest()
            out.append((h, parent, tokens[i:i + block_size]))
            parent = h
        return out

    def publish(events):
        nonlocal seq, lose_next
        payload = msgpack.packb([time.time(), events], use_bin_type=True)
        buffer.append((seq, payload))
        if not lose_next:
            pub.send_multipart([topic, seq.to_bytes(8, "big"), payload])
        lose_next = False
        seq += 1

    poller = zmq.Poller()
    poller.register(replay, zmq.POLLIN)
    poller.register(sys.stdin, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            if sock is replay:
                frames = replay.recv_multipart()
                if len(frames) != 3:  # vLLM logs and ignores a malformed request
                    continue
                ident, _, start = frames
                start = int.from_bytes(start, "big")
                for s, payload in buffer:
                    if s >= start:
                        replay.send_multipart([ident, b"", s.to_bytes(8, "big"), payload])
                replay.send_multipart([ident, b"", END_SEQ, b""])
                continue
            line = sys.stdin.readline()
            if not line:
                return
            cmd = json.loads(line)
            op = cmd["op"]
            medium = cmd.get("medium", "GPU")
            if op == "quit":
                return
            if op == "request":
                events, run = [], None
                for h, parent, toks in block_hashes(cmd["tokens"]):
                    if (medium, h) in cached:
                        run = None
                        continue
                    cached[(medium, h)] = parent
                    if parent is not None:
                        children[(medium, parent)] = children.get((medium, parent), 0) + 1
                    if run is None:
                        run = ["BlockStored", [], parent, [], block_size, None, medium]
                        events.append(run)
                    run[1].append(h)
                    run[3].extend(toks)
                publish(events)
            elif op == "evict":
                chain = block_hashes(cmd["tokens"])[-cmd["blocks"]:]
                gone = []
                for h, parent, _ in reversed(chain):
                    key = (medium, h)
                    if key in cached and children.get(key, 0) == 0:
                        del cached[key]
                        if parent is not None:
                            children[(medium, parent)] -= 1
                        gone.append(h)
                publish([["BlockRemoved", gone, medium]])
            elif op == "clear":
                cached.clear()
                children.clear()
                publish([["AllBlocksCleared"]])
            elif op == "lose_next":
                lose_next = True
            elif op == "forget":
                buffer.clear()
            print(f"ok {seq}", flush=True)


if __name__ == "__main__":
    main()
