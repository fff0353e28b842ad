#!/usr/bin/env python3
"""Resume of a finished reply: one reply of 1,000 text deltas from the load test's mock OpenAI
upstream, then N `GET /v1/generations/{id}/events` of the whole reply, timed at the client.

    cargo build --release --bin threadline
    python3 benches/resume.py target/release/threadline [N]

Needs the load test's virtualenv (`../shared/loadtest/bench.sh` creates it). Loopback only,
SQLite in a temp dir, bounded: one reply and N (default 200) reads.
"""
import http.client, json, subprocess, sys, time, os, tempfile, socket, urllib.request
BIN=sys.argv[1]; N=int(sys.argv[2]) if len(sys.argv)>2 else 200
LT=os.environ.get('LOADTEST_DIR', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'loadtest'))
PY=os.path.expanduser('~/.cache/threadline-loadtest/venv/bin/python')
pf=tempfile.mktemp()
mock=subprocess.Popen([PY,f'{LT}/mock_openai.py','--port','0','--port-file',pf,'--chunks','1000','--delay-ms','0','--ttft-ms','0'],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
while not (os.path.exists(pf) and open(pf).read().strip()): time.sleep(0.1)
murl=f'http://127.0.0.1:{open(pf).read().strip()}'
s=socket.socket(); s.bind(('127.0.0.1',0)); port=s.getsockname()[1]; s.close()
d=tempfile.mkdtemp()
open(f'{d}/plans.yaml','w').write('tiers:\n  anonymous:\n    credits: { limit: null, window: day }\n')
env=dict(os.environ, THREADLINE_BIND=f'127.0.0.1:{port}', THREADLINE_DATA_DIR=d, THREADLINE_PLANS_FILE=f'{d}/plans.yaml', RUST_LOG='warn', OPENAI_API_KEY='sk', OPENAI_BASE_URL=murl+'/v1')
env.pop('DATABASE_URL',None)
srv=subprocess.Popen([BIN,'serve'],env=env,stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
base=f'http://127.0.0.1:{port}'
for _ in range(100):
    try: urllib.request.urlopen(base+'/readyz',timeout=1); break
    except Exception: time.sleep(0.1)
tok=json.load(urllib.request.urlopen(urllib.request.Request(base+'/v1/auth/anonymous',method='POST')))['token']
h={'authorization':'Bearer '+tok,'content-type':'application/json'}
r=urllib.request.urlopen(urllib.request.Request(base+'/v1/chat',data=json.dumps({'id':'t1','message':'hi','model':'gpt-4o-mini'}).encode(),headers=h))
body=r.read().decode()
deltas=body.count('text-delta')
time.sleep(0.5)
t=json.load(urllib.request.urlopen(urllib.request.Request(base+'/v1/threads/t1',headers=h)))
gid=t['messages'][1]['metadata']['generation_id']
lat=[]
for i in range(N):
    c=http.client.HTTPConnection('127.0.0.1',port)
    t0=time.perf_counter(); c.request('GET',f'/v1/generations/{gid}/events',headers=h); resp=c.getresponse(); b=resp.read(); lat.append((time.perf_counter()-t0)*1000); c.close()
lat.sort()
print(f'{os.path.basename(BIN)} deltas={deltas} bytes={len(b)} status={resp.status} p50={lat[len(lat)//2]:.2f}ms p99={lat[int(len(lat)*0.99)-1]:.2f}ms')
srv.terminate(); mock.terminate(); srv.wait(); mock.wait()
