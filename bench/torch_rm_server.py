"""The PyTorch side of the reward-server benchmark (bench/serve.sh): a plain PyTorch HTTP server of the same
BERT reward model (tools/torch_ref/bert.py, the model directory's weights), answering POST /get_reward
{"prompt": [...], "response": [...]} with {"rewards": [...]}, as OpenRLHF's serve_rm does: one forward per
request (a lock around the model; requests are not batched together), http.server with a thread per
connection and HTTP/1.1 keep-alive. Python has no BERT tokenizer in Debian's packages, so the texts the
benchmark sends are tokenized beforehand (by `rlhf tokenize`) and looked up: tokenization is free here,
which favours this side.

usage: /usr/bin/python3 bench/torch_rm_server.py MODEL_DIR TOKENIZED.jsonl THREADS PORT_FILE
  TOKENIZED.jsonl rows: {"prompt", "response", "input_ids", "token_type_ids"}
"""
import http.server
import json
import os
import sys
import threading

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "torch_ref"))
from bert import BertForSequenceClassification  # noqa: E402
from hfio import load_config, load_safetensors  # noqa: E402

model_dir, tok_path, threads, port_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
torch.set_flush_denormal(True)
model = BertForSequenceClassification(load_config(model_dir))
model.load_hf(load_safetensors(os.path.join(model_dir, "model.safetensors")))
model.eval()
table = {}
for line in open(tok_path):
    r = json.loads(line)
    table[(r["prompt"], r["response"])] = (r["input_ids"], r["token_type_ids"])
lock = threading.Lock()


def score(pairs):
    enc = [table[p] for p in pairs]
    T = max(len(e[0]) for e in enc)
    ids = torch.zeros(len(enc), T, dtype=torch.long)
    types = torch.zeros(len(enc), T, dtype=torch.long)
    mask = torch.zeros(len(enc), T, dtype=torch.long)
    for i, (a, b) in enumerate(enc):
        ids[i, :len(a)] = torch.tensor(a)
        types[i, :len(b)] = torch.tensor(b)
        mask[i, :len(a)] = 1
    with lock, torch.no_grad():
        return model(ids, mask, types)[:, 0].tolist()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            out, code = {"rewards": score(list(zip(body["prompt"], body["response"])))}, 200
        except KeyError as e:
            out, code = {"error": "not pre-tokenized: %r" % (e,)}, 400
        data = json.dumps({**out, "scores": out.get("rewards")}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 256  # http.server's default listen backlog (5) refuses bursts of 32 clients
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
