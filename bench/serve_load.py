"""Load generator of the reward-server benchmark (bench/serve.sh): C client threads, each on its own HTTP/1.1
keep-alive connection, post one (prompt, response) row per request for SECONDS seconds (after one warm-up
request each). Prints one JSON line: {"requests", "req_per_s", "p50_ms", "p99_ms", "errors"}.

usage: python3 bench/serve_load.py PORT ROWS.jsonl CLIENTS SECONDS
"""
import http.client
import json
import sys
import threading
import time

port, rows_path, clients, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rows = [json.loads(l) for l in open(rows_path)]
lat, errors, lock = [], [0], threading.Lock()
start = threading.Barrier(clients + 1)
t_end = [0.0]


def client(i):
    c = [None]
    k = i

    def post():
        nonlocal k
        r = rows[k % len(rows)]
        k += clients
        body = json.dumps({"prompt": [r["prompt"]], "response": [r["response"]]})
        try:
            if c[0] is None:
                c[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
            c[0].request("POST", "/get_reward", body=body, headers={"Content-Type": "application/json"})
            resp = c[0].getresponse()
            data = resp.read()
            return resp.status == 200 and len(json.loads(data)["rewards"]) == 1
        except Exception:  # counted as an error; the next request opens a new connection
            c[0] = None
            return False

    post()  # warm-up: connection and first forward
    start.wait()
    mine, bad = [], 0
    while time.perf_counter() < t_end[0]:
        t0 = time.perf_counter()
        ok = post()
        mine.append(time.perf_counter() - t0)
        bad += not ok
    with lock:
        lat.extend(mine)
        errors[0] += bad


threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads:
    t.start()
t_end[0] = time.perf_counter() + 3600
start.wait()
t0 = time.perf_counter()
t_end[0] = t0 + seconds
for t in threads:
    t.join()
wall = time.perf_counter() - t0  # includes the requests in flight at the deadline
lat.sort()
q = lambda p: 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(json.dumps({"requests": len(lat), "req_per_s": len(lat) / wall, "p50_ms": q(0.50), "p99_ms": q(0.99),
                  "errors": errors[0]}))
