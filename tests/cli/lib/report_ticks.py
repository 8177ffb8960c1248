# report.html checks for tests/cli/report_render.sh (standard library only): round axis ticks, and the
# exact series of each chart.
import html, math, re, sys
def check_ticks(page, what):
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert svgs, what + ": no charts"
    for svg in svgs:
        for cls in ("ytick", "xtick"):
            v = [float(t) for t in re.findall(r'class="%s"[^>]*>([^<]*)<' % cls, svg)]
            assert len(v) >= 2, (what, cls, v)
            step = v[1] - v[0]
            e = math.floor(math.log10(step) + 1e-9)
            m = round(step / 10 ** e, 6)
            assert m in (1, 2, 5), (what, cls, v, step)
            for a, b in zip(v, v[1:]):
                assert abs((b - a) - step) <= 1e-6 * step, (what, cls, v)
            for t in v:
                assert abs(t / step - round(t / step)) < 1e-6, (what, cls, v)
def series(page):
    out = {}
    for svg in re.findall(r"<svg.*?</svg>", page, re.S):
        for n, pts in re.findall(r'<polyline[^>]*data-series="([^"]*)"[^>]*data-points="([^"]*)"', svg):
            out[html.unescape(n)] = ([tuple(map(float, p.split(":"))) for p in pts.split()], svg)
    return out
