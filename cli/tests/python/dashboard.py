"""Drives headless Chromium over the DevTools protocol against `trainlog serve`.

    dashboard.py CHROMIUM URL RUN METRICS_FILE NEW_RUN_DIR SCREENSHOT_DIR

Loads the page, waits for the runs table and the charts, appends lines to METRICS_FILE (a
file of run RUN: 50 more steps of `loss`, in trainlog's format) and waits until the `loss`
chart draws RUN's new last step; hovers, drags to zoom, switches the x axis, log y and
every rank; writes a run in NEW_RUN_DIR and waits for its row. Then prints one JSON
object: console errors, what the page showed at each point, and how long the new step took
to be drawn. Screenshots go to
SCREENSHOT_DIR. Nothing is asserted here: the Rust test asserts on the JSON.
"""

import base64
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import websocket

chromium, url, run, metrics_file, new_run_dir, shots = sys.argv[1:7]
profile = tempfile.mkdtemp(prefix="trainlog-chromium-")
browser = subprocess.Popen(
    [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
     "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1000",
     "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
ws_url = None
deadline = time.time() + 60
for line in browser.stderr:
    m = re.search(r"DevTools listening on (ws://\S+)", line)
    if m:
        ws_url = m.group(1)
        break
    if time.time() > deadline:
        break
if not ws_url:
    browser.kill()
    sys.exit("chromium did not start its DevTools endpoint")

# The browser endpoint; the page's target is attached with flatten=true (one socket).
conn = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
ids = itertools.count(1)
events = []
session = None


def call(method, params=None, in_session=True):
    i = next(ids)
    msg = {"id": i, "method": method, "params": params or {}}
    if in_session and session:
        msg["sessionId"] = session
    conn.send(json.dumps(msg))
    while True:
        reply = json.loads(conn.recv())
        if reply.get("id") == i:
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply.get("result", {})
        events.append(reply)


def pump(seconds):
    """Collects events for a while."""
    conn.settimeout(0.05)
    end = time.time() + seconds
    while time.time() < end:
        try:
            events.append(json.loads(conn.recv()))
        except websocket.WebSocketTimeoutException:
            pass
    conn.settimeout(60)


def js(expression):
    result = call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                       "awaitPromise": True})
    if "exceptionDetails" in result:
        raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def wait_for(expression, seconds):
    start = time.time()
    while time.time() - start < seconds:
        value = js(expression)
        if value:
            return time.time() - start, value
        pump(0.05)
    return None, js(expression)


def screenshot(name):
    data = call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
    with open(os.path.join(shots, name), "wb") as f:
        f.write(base64.b64decode(data))


target = call("Target.createTarget", {"url": "about:blank"}, in_session=False)["targetId"]
session = call("Target.attachToTarget", {"targetId": target, "flatten": True},
               in_session=False)["sessionId"]
for domain in ("Runtime", "Log", "Page"):
    call(f"{domain}.enable")
call("Page.navigate", {"url": url})

# What the page shows once loaded.
STATE = """(() => {
  const t = window.trainlogDebug;
  const loss = t && t.charts.get('s:loss');
  const canvas = loss && loss.card.querySelector('canvas');
  let inked = 0;
  if (canvas) {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200)) inked++;
  }
  return {
    rows: [...document.querySelectorAll('#runs tbody tr[data-run]')].map(r => r.dataset.run),
    charts: t ? [...t.charts.keys()] : [],
    drawn: t ? [...t.charts.values()].filter(c => c.plot).map(c => c.spec.key) : [],
    loss_max_x: loss && loss.plot ? Math.max(...loss.plot.data[0]) : null,
    loss_last_step: loss ? Object.fromEntries(loss.series.map(s => [s.source.run, Math.max(...s.data[0].step)])) : null,
    loss_foot: loss ? loss.card.querySelector('.foot').textContent : null,
    loss_title: loss ? loss.card.querySelector('h3').textContent : null,
    inked,
    live: document.getElementById('live').textContent,
  };
})()"""

# Charts are drawn once scrolled into view: bring `loss` there.
load_time, _ = wait_for("(() => { const t = window.trainlogDebug; const c = t && t.charts.get('s:loss'); if (c) c.card.scrollIntoView({block: 'center'}); return !!(c && c.plot); })()", 20)
pump(0.5)
before = js(STATE)
screenshot("dashboard.png")

# Append steps the way the writer does (whole lines), and time until the chart has them.
with open(metrics_file) as f:
    last_step = max(json.loads(l).get("step", -1) for l in f if l.strip())
appended = last_step + 50
with open(metrics_file, "a") as f:
    for step in range(last_step + 1, appended + 1):
        f.write(json.dumps({"timestamp": "2026-01-01T00:00:00.000000Z", "rank": 0,
                            "step": step, "loss": 0.05}) + "\n")
appended_at = time.time()
drawn_after, _ = wait_for(f"(() => {{ const c = window.trainlogDebug.charts.get('s:loss'); const s = c.series.find(s => s.source.run === {json.dumps(run)}); return !!(c.plot && s && Math.max(...s.data[0].step) >= {appended} && Math.max(...c.plot.data[0]) >= {appended}); }})()", 10)
after = js(STATE)
# Hover over the middle of the loss chart: the tooltip lists the runs.
box = js("(() => { const p = window.trainlogDebug.charts.get('s:loss')?.plot; if (!p) return null; p.over.scrollIntoView({block: 'center'}); const r = p.over.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()")
tooltip = None
if box:
    call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box[0], "y": box[1]})
    pump(0.3)
    tooltip = js("document.getElementById('tooltip').hidden ? null : document.getElementById('tooltip').innerText")
    screenshot("dashboard-hover.png")

# Drag across the middle fifth of the loss chart: it zooms and fetches that window whole.
LOSS = "window.trainlogDebug.charts.get('s:loss')"
box = js(f"(() => {{ const p = {LOSS}.plot; const r = p.over.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }})()")
y = box[1] + box[3] / 2
call("Input.dispatchMouseEvent", {"type": "mousePressed", "x": box[0] + box[2] * 0.4, "y": y, "button": "left", "clickCount": 1})
for f in (0.42, 0.45, 0.48):
    call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box[0] + box[2] * f, "y": y, "button": "left", "buttons": 1})
call("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": box[0] + box[2] * 0.5, "y": y, "button": "left", "clickCount": 1})
wait_for(f"!!({LOSS}.zoom && {LOSS}.series.length && {LOSS}.series.every(s => !s.data[0].min))", 5)
zoomed = js(f"""(() => {{ const c = {LOSS}; return {{
  zoom: c.zoom, foot: c.card.querySelector('.foot').textContent,
  totals: c.series.map(s => s.data[0].total), points: c.series.map(s => s.data[0].step.length),
  bucketed: c.series.some(s => !!s.data[0].min) }}; }})()""")
screenshot("dashboard-zoomed.png")

# The other x axes, log y, every rank: each redraws without an error.
def choose(element, value):
    js(f"(() => {{ const e = document.getElementById('{element}'); "
       f"if (e.type === 'checkbox') e.checked = {json.dumps(bool(value))}; else e.value = {json.dumps(value)}; "
       f"e.dispatchEvent(new Event('change')); }})()")
    pump(0.5)

axes = {}
for axis in ("relative", "wall", "step"):
    choose("xaxis", axis)
    wait_for(f"!!{LOSS}.plot", 5)
    axes[axis] = js(f"(() => {{ const x = {LOSS}.plot.data[0]; return [Math.min(...x), Math.max(...x)]; }})()")
choose("logy", True)
logy = js(f"{LOSS}.plot.scales.y.distr")
choose("logy", False)
choose("all-ranks", True)
wait_for(f"{LOSS}.series.length > 0 && {LOSS}.series.every(s => s.data)", 5)
ranks = js(f"{LOSS}.series.map(s => s.source.label)")
choose("all-ranks", False)

# A new run appears in the table without a reload.
os.makedirs(new_run_dir, exist_ok=True)
with open(os.path.join(new_run_dir, "metrics_rank0.jsonl"), "w") as f:
    for step in range(10):
        f.write(json.dumps({"timestamp": "2026-01-01T00:00:00.000000Z", "rank": 0, "step": step, "loss": 1.0}) + "\n")
new_name = os.path.basename(new_run_dir)
new_run_after, _ = wait_for(f"[...document.querySelectorAll('#runs tbody tr[data-run]')].some(r => r.dataset.run.endsWith({json.dumps(new_name)}))", 5)
rows_at_end = js("[...document.querySelectorAll('#runs tbody tr[data-run]')].map(r => r.dataset.run)")
js("window.scrollTo(0, 0)")
pump(0.3)
screenshot("dashboard-top.png")

errors = []
for e in events:
    method, params = e.get("method"), e.get("params", {})
    if method == "Runtime.exceptionThrown":
        errors.append(params["exceptionDetails"].get("exception", {}).get("description")
                      or params["exceptionDetails"].get("text"))
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        errors.append(f"{params['entry']['text']} {params['entry'].get('url', '')}")

print(json.dumps({"load_seconds": load_time, "before": before, "appended_step": appended,
                  "drawn_after_seconds": drawn_after, "after": after, "tooltip": tooltip,
                  "zoomed": zoomed, "axes": axes, "logy_distr": logy, "ranks": ranks,
                  "new_run_seconds": new_run_after, "rows_at_end": rows_at_end,
                  "errors": errors}))
conn.close()
browser.kill()
browser.wait()
