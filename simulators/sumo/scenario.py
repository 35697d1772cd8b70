"""SUMO freeway scenarios: plain XML -> netconvert -> routes, loops and a config file.

A scenario is one direction of a freeway along the x axis (x in metres = km post x 1000):
a detector-free feeder edge before km 0 (vehicles are inserted anywhere on it with
``departPos="last"``, the only way to reach near-capacity insertion, see
/work/shared/notes/sumo.md), the mainline to ``length_km`` with on-ramps (each with a
200 m acceleration lane) and off-ramps, and a short exit stretch after the last loop.
Induction loops (E1) sit on every lane every ``loop_spacing_m``. Demand comes in
five-minute blocks of Poisson flows (``period="exp(rate)"``) that rise to near
capacity in the middle of the run and fall again; a share are trucks, every vehicle
uses ``tau = 1.4`` s so the merge really breaks down.

Ramp km posts must not coincide with loop positions; the defaults put ramps at
x.25 / x.75 km so every loop is inside a plain mainline edge.
"""
from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulators.incidents import IncidentSpec

DEMAND_BLOCK_S = 300  # Poisson rates change every five minutes
ACCEL_LANE_M = 200.0
EXIT_STRETCH_M = 300.0
FEEDER_GAP_M = 50.0
RAMP_LENGTH_M = 300.0
DEFAULT_START_MS = 1_772_406_000_000  # 2026-03-02 07:00 Singapore time (UTC+8), a Monday


@dataclass(frozen=True)
class SumoScenarioConfig:
    """What to generate. Demand is in veh/h; rates in the middle of the run reach the peaks."""

    corridor: str = "SUMO"
    direction: str = "E"
    length_km: float = 10.0
    lanes: int = 3
    speed_limit_kmh: float = 100.0
    loop_spacing_m: float = 500.0
    feeder_m: float = 1000.0
    on_ramps_km: tuple[float, ...] = (2.25, 6.25)
    off_ramps_km: tuple[float, ...] = (4.75, 8.75)
    off_ramp_share: float = 0.10  # of the mainline flow passing an off-ramp, this share leaves
    mainline_base_veh_h_lane: float = 600.0
    mainline_peak_veh_h_lane: float = 1550.0
    ramp_base_veh_h: float = 200.0
    ramp_peak_veh_h: float = 800.0
    truck_share: float = 0.12
    tau_s: float = 1.4
    seed: int = 1
    start_ms: int = DEFAULT_START_MS
    duration_s: int = 3600
    warmup_s: int = 600  # simulated before start_ms so the road is not empty at the first reading
    interval_s: int = 30
    step_s: float = 1.0
    time_to_teleport_s: int = 3600
    incidents: tuple[IncidentSpec, ...] = ()
    e1_xml: bool = False  # also write SUMO's own E1 XML output (for the equivalence test)
    extra_sumo_args: tuple[str, ...] = field(default=())

    @property
    def roadway_key(self) -> str:
        return f"{self.corridor}-{self.direction}"

    def __post_init__(self) -> None:
        if self.warmup_s % self.interval_s or self.duration_s % self.interval_s:
            raise ValueError("warmup_s and duration_s must be multiples of interval_s")
        if self.step_s > self.tau_s:
            raise ValueError("step_s must not exceed tau_s (car-following needs tau >= step)")
        spacing_km = self.loop_spacing_m / 1000
        for km in (*self.on_ramps_km, *self.off_ramps_km):
            if not 0 < km < self.length_km:
                raise ValueError(f"ramp at km {km} is outside the mainline (0, {self.length_km})")
            for edge_km in (km, km + ACCEL_LANE_M / 1000 if km in self.on_ramps_km else km):
                off = edge_km / spacing_km - round(edge_km / spacing_km)
                if abs(off) * self.loop_spacing_m < 30:
                    raise ValueError(f"ramp node at km {edge_km} is too close to a loop; keep 30 m clear")


@dataclass(frozen=True)
class LoopSpec:
    """One E1 loop: roadpulse ids and SUMO placement. ``lane_index`` is SUMO's (0 = shoulder)."""

    loop_id: str  # = roadpulse detector id
    station_index: int
    km: float
    lane_index: int
    lane_id: str
    pos_m: float


@dataclass(frozen=True)
class SumoScenario:
    """Files of a generated scenario and where its loops are."""

    config: SumoScenarioConfig
    workdir: Path
    net_file: Path
    route_file: Path
    additional_file: Path
    sumocfg: Path
    loops: tuple[LoopSpec, ...]
    station_kms: tuple[float, ...]
    e1_output: Path | None
    exit_edge: str
    mainline: tuple[tuple[str, float, float, int], ...]  # (edge id, x start m, x end m, lanes) in driving order

    def sumo_args(self, binary: str = "sumo") -> list[str]:
        """Command line for the ``sumo`` CLI or ``libsumo.start``."""
        cfg = self.config
        return [binary, "-c", str(self.sumocfg), "--seed", str(cfg.seed), "--no-step-log", "true",
                "--no-warnings", "true", "--time-to-teleport", str(cfg.time_to_teleport_s),
                "--step-length", str(cfg.step_s), "--precision", "6", *cfg.extra_sumo_args]

    def sumo_time_s(self, t_ms: int) -> float:
        """SUMO's clock (0 = start of the warm-up) for a UTC ms time."""
        return (t_ms - self.config.start_ms) / 1000 + self.config.warmup_s

    def utc_ms(self, sumo_s: float) -> int:
        return int(self.config.start_ms + round((sumo_s - self.config.warmup_s) * 1000))


def sumo_binary(name: str) -> str:
    """Path of a SUMO tool installed with the ``eclipse-sumo`` wheel (or found on PATH)."""
    try:
        import sumo  # noqa: F401  (sets SUMO_HOME)
        home = Path(sumo.SUMO_HOME)
        exe = home / "bin" / name
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install eclipse-sumo==1.28.0 (pip install 'roadpulse[sumo]')")
    return found


# ---- geometry ----------------------------------------------------------------
def _mainline_nodes(cfg: SumoScenarioConfig) -> list[tuple[str, float]]:
    nodes = [("feed", -cfg.feeder_m), ("km0", -FEEDER_GAP_M)]  # first loop (km 0) 50 m into the mainline
    for i, km in enumerate(cfg.on_ramps_km):
        nodes += [(f"on{i}", km * 1000), (f"on{i}end", km * 1000 + ACCEL_LANE_M)]
    nodes += [(f"off{i}", km * 1000) for i, km in enumerate(cfg.off_ramps_km)]
    nodes.append(("end", cfg.length_km * 1000 + EXIT_STRETCH_M))
    return sorted(nodes, key=lambda n: n[1])


def _write_plain(cfg: SumoScenarioConfig, d: Path) -> tuple[list[str], str]:
    """Plain node/edge/connection files; returns mainline edge ids in order and the exit edge."""
    nodes = _mainline_nodes(cfg)
    v = cfg.speed_limit_kmh / 3.6
    nod = ['<nodes>'] + [f'  <node id="{n}" x="{x:.2f}" y="0.00" type="priority"/>' for n, x in nodes]
    edg = ['<edges>']
    con = ['<connections>']
    edges = []
    accel = {f"on{i}" for i in range(len(cfg.on_ramps_km))}
    for (a, _xa), (b, _xb) in zip(nodes, nodes[1:]):
        eid = f"M_{a}"
        lanes = cfg.lanes + (1 if a in accel else 0)
        edg.append(f'  <edge id="{eid}" from="{a}" to="{b}" numLanes="{lanes}" speed="{v:.3f}" priority="10"/>')
        edges.append(eid)
    for i, km in enumerate(cfg.on_ramps_km):
        x = km * 1000
        nod.append(f'  <node id="onsrc{i}" x="{x - RAMP_LENGTH_M:.2f}" y="-60.00" type="priority"/>')
        edg.append(f'  <edge id="R_on{i}" from="onsrc{i}" to="on{i}" numLanes="1" speed="{min(v, 22.2):.3f}" '
                   f'priority="5"/>')
        before = edges[[n for n, _ in nodes].index(f"on{i}") - 1]
        acc, after = f"M_on{i}", f"M_on{i}end"
        con += [f'  <connection from="{before}" to="{acc}" fromLane="{j}" toLane="{j + 1}"/>' for j in range(cfg.lanes)]
        con.append(f'  <connection from="R_on{i}" to="{acc}" fromLane="0" toLane="0"/>')
        con += [f'  <connection from="{acc}" to="{after}" fromLane="{j + 1}" toLane="{j}"/>' for j in range(cfg.lanes)]
    for i, km in enumerate(cfg.off_ramps_km):
        x = km * 1000
        nod.append(f'  <node id="offdst{i}" x="{x + RAMP_LENGTH_M:.2f}" y="-60.00" type="priority"/>')
        edg.append(f'  <edge id="R_off{i}" from="off{i}" to="offdst{i}" numLanes="1" speed="{min(v, 22.2):.3f}" '
                   f'priority="5"/>')
        before = edges[[n for n, _ in nodes].index(f"off{i}") - 1]
        con += [f'  <connection from="{before}" to="M_off{i}" fromLane="{j}" toLane="{j}"/>' for j in range(cfg.lanes)]
        con.append(f'  <connection from="{before}" to="R_off{i}" fromLane="0" toLane="0"/>')
    (d / "corridor.nod.xml").write_text("\n".join(nod + ['</nodes>']) + "\n")
    (d / "corridor.edg.xml").write_text("\n".join(edg + ['</edges>']) + "\n")
    (d / "corridor.con.xml").write_text("\n".join(con + ['</connections>']) + "\n")
    return edges, edges[-1]


def _run_netconvert(d: Path) -> Path:
    out = d / "corridor.net.xml"
    cmd = [sumo_binary("netconvert"), "-n", "corridor.nod.xml", "-e", "corridor.edg.xml", "-x", "corridor.con.xml",
           "-o", out.name, "--no-turnarounds", "--offset.disable-normalization", "--no-warnings", "true"]
    res = subprocess.run(cmd, cwd=d, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"netconvert failed: {res.stderr.strip()[-2000:]}")
    return out


def _mainline_positions(net_file: Path, edges: list[str]) -> list[tuple[str, float, float, int]]:
    """(edge id, x start, x end, lanes) of the built mainline edges."""
    import sumolib

    net = sumolib.net.readNet(str(net_file))
    out = []
    for eid in edges:
        edge = net.getEdge(eid)
        shape = edge.getLane(0).getShape()
        out.append((eid, shape[0][0], shape[-1][0], edge.getLaneNumber()))
    return out


def locate(mainline: list[tuple[str, float, float, int]], x_m: float) -> tuple[str, float, int]:
    """(edge, pos, lanes) for x on the built mainline."""
    for eid, x0, x1, lanes in mainline:
        if x0 <= x_m < x1:
            return eid, x_m - x0, lanes
    raise ValueError(f"x = {x_m} m falls in a junction or off the mainline")


# ---- demand ------------------------------------------------------------------
def demand_profile(cfg: SumoScenarioConfig) -> np.ndarray:
    """Share of the way from base to peak demand per five-minute block of the run (warm-up included):
    a plateau in the middle third, smooth rises and falls either side."""
    total = cfg.warmup_s + cfg.duration_s
    n = max(math.ceil(total / DEMAND_BLOCK_S), 1)
    u = (np.arange(n) + 0.5) * DEMAND_BLOCK_S / total
    ramp = np.clip(1.5 - 3.0 * np.abs(u - 0.5), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def _route_sets(cfg: SumoScenarioConfig, edges: list[str], exit_edge: str) -> dict[str, list[tuple[list[str], float]]]:
    """Routes per origin with probabilities: each off-ramp passed takes ``off_ramp_share`` of what remains."""
    def path(start_edge: str, last: str) -> list[str]:
        i = edges.index(start_edge)
        return edges[i:edges.index(last) + 1]

    origins = {"main": ("M_feed", -cfg.feeder_m)}
    for i, km in enumerate(cfg.on_ramps_km):
        origins[f"on{i}"] = (f"R_on{i}", km * 1000)
    offs = sorted(enumerate(cfg.off_ramps_km), key=lambda t: t[1])
    out: dict[str, list[tuple[list[str], float]]] = {}
    for name, (first, x) in origins.items():
        head = [first] if first.startswith("R_") else []
        start = f"M_{first[2:]}" if head else first
        routes = []
        remaining = 1.0
        for i, km in offs:
            if km * 1000 <= x:
                continue
            before = edges[edges.index(f"M_off{i}") - 1]
            routes.append((head + path(start, before) + [f"R_off{i}"], remaining * cfg.off_ramp_share))
            remaining *= 1 - cfg.off_ramp_share
        routes.append((head + path(start, exit_edge), remaining))
        out[name] = routes
    return out


def _write_routes(cfg: SumoScenarioConfig, d: Path, edges: list[str], exit_edge: str) -> Path:
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 5]))
    v = cfg.speed_limit_kmh / 3.6
    lines = [
        '<routes>',
        f'  <vTypeDistribution id="mix"><vType id="c" vClass="passenger" length="4.5" minGap="2.5" '
        f'maxSpeed="{v * 1.1:.2f}" accel="2.6" decel="4.5" sigma="0.5" tau="{cfg.tau_s}" '
        f'speedFactor="normc(1.0,0.08,0.8,1.2)" probability="{1 - cfg.truck_share:.4f}"/>'
        f'<vType id="t" vClass="truck" length="12.0" minGap="3.0" maxSpeed="{min(v, 25.0):.2f}" accel="1.2" '
        f'decel="4.0" sigma="0.5" tau="{cfg.tau_s}" speedFactor="normc(0.95,0.05,0.8,1.1)" '
        f'probability="{cfg.truck_share:.4f}"/></vTypeDistribution>',
    ]
    for origin, routes in _route_sets(cfg, edges, exit_edge).items():
        lines.append(f'  <routeDistribution id="rd_{origin}">')
        for k, (r, p) in enumerate(routes):
            lines.append(f'    <route id="r_{origin}_{k}" edges="{" ".join(r)}" probability="{p:.6f}"/>')
        lines.append('  </routeDistribution>')
    profile = demand_profile(cfg)
    # each run draws its own peak (90-105 % of the configured one) and a small per-block wobble
    main_peak = cfg.mainline_peak_veh_h_lane * rng.uniform(0.9, 1.05)
    ramp_peak = cfg.ramp_peak_veh_h * rng.uniform(0.85, 1.1)
    flows = []
    for b, share in enumerate(profile):
        t0, t1 = b * DEMAND_BLOCK_S, (b + 1) * DEMAND_BLOCK_S
        wobble = rng.normal(1.0, 0.03)
        main = cfg.lanes * (cfg.mainline_base_veh_h_lane + share * (main_peak - cfg.mainline_base_veh_h_lane))
        ramp = cfg.ramp_base_veh_h + share * (ramp_peak - cfg.ramp_base_veh_h)
        for origin, rate in [("main", main)] + [(f"on{i}", ramp) for i in range(len(cfg.on_ramps_km))]:
            per_s = max(rate * wobble, 1.0) / 3600
            pos = 'departPos="last" departSpeed="last"' if origin == "main" else 'departPos="base" departSpeed="max"'
            flows.append((t0, f'  <flow id="f_{origin}_{b}" type="mix" route="rd_{origin}" begin="{t0}" end="{t1}" '
                              f'period="exp({per_s:.6f})" departLane="best" {pos}/>'))
    lines += [f for _, f in sorted(flows, key=lambda t: t[0])]
    lines.append('</routes>')
    out = d / "corridor.rou.xml"
    out.write_text("\n".join(lines) + "\n")
    return out


# ---- loops and config ------------------------------------------------------------
def _loops(cfg: SumoScenarioConfig, mainline: list[tuple[str, float, float, int]]) -> tuple[list[LoopSpec], list[float]]:
    n_st = int(math.floor(cfg.length_km * 1000 / cfg.loop_spacing_m + 1e-9)) + 1
    loops, kms = [], []
    for s in range(n_st):
        x = s * cfg.loop_spacing_m
        km = round(x / 1000, 3)
        eid, pos, lanes = locate(mainline, x)
        if lanes != cfg.lanes:
            raise ValueError(f"loop at km {km} is on an edge with {lanes} lanes (ramp lane); move the ramps")
        kms.append(km)
        for lane in range(1, lanes + 1):  # roadpulse lane 1 = leftmost = SUMO's highest index
            idx = lanes - lane
            loops.append(LoopSpec(detector_id(cfg, s, lane), s, km, idx, f"{eid}_{idx}", round(pos, 3)))
    return loops, kms


def station_id(cfg: SumoScenarioConfig, index: int) -> str:
    return f"{cfg.corridor}-{cfg.direction}-{index:03d}"


def detector_id(cfg: SumoScenarioConfig, index: int, lane: int) -> str:
    return f"{station_id(cfg, index)}-L{lane}"


def _write_additional(cfg: SumoScenarioConfig, d: Path, loops: list[LoopSpec]) -> tuple[Path, Path | None]:
    e1 = d / "e1.xml" if cfg.e1_xml else None
    target = e1.name if e1 else "NUL"
    lines = ['<additional>'] + [
        f'  <inductionLoop id="{lp.loop_id}" lane="{lp.lane_id}" pos="{lp.pos_m:.3f}" period="{cfg.interval_s}" '
        f'file="{target}"/>' for lp in loops] + ['</additional>']
    out = d / "corridor.add.xml"
    out.write_text("\n".join(lines) + "\n")
    return out, e1


def build_scenario(cfg: SumoScenarioConfig, workdir: str | Path) -> SumoScenario:
    """Write every file of the scenario under ``workdir`` (created) and return where things are."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    edges, exit_edge = _write_plain(cfg, d)
    net_file = _run_netconvert(d)
    mainline = _mainline_positions(net_file, edges)
    loops, kms = _loops(cfg, mainline)
    route_file = _write_routes(cfg, d, edges, exit_edge)
    add_file, e1 = _write_additional(cfg, d, loops)
    end_s = cfg.warmup_s + cfg.duration_s
    sumocfg = d / "corridor.sumocfg"
    sumocfg.write_text(
        '<configuration>\n'
        f'  <input><net-file value="{net_file.name}"/><route-files value="{route_file.name}"/>'
        f'<additional-files value="{add_file.name}"/></input>\n'
        f'  <time><begin value="0"/><end value="{end_s}"/></time>\n'
        '</configuration>\n')
    return SumoScenario(cfg, d, net_file, route_file, add_file, sumocfg, tuple(loops), tuple(kms), e1, exit_edge,
                        tuple(mainline))
