# Wall and CPU time (user + system) of `livchat server list` and `livchat settings set` on homes
# of 10 and 1,000 servers, 30 runs each, median (README, "State at scale"). CPU time is the
# figure to compare on a busy machine. Build first: cargo build --release -p livchat-cli
import os, resource, subprocess, sys, tempfile, time, statistics
BIN = os.environ.get("BIN", os.path.join(os.path.dirname(__file__), "../../../target/release/livchat"))
GEN = os.path.join(os.path.dirname(__file__), "gen.py")
for n in (10, 1000):
    home = tempfile.mkdtemp() + "/home"
    env = dict(os.environ, LIVCHAT_HOME=home)
    subprocess.run([BIN, "init"], env=env, capture_output=True, check=True)
    subprocess.run(["python3", GEN, home, str(n)], check=True)
    subprocess.run([BIN, "server", "list"], env=env, capture_output=True, check=True)
    for what in ("list", "settings"):
        walls, cpus = [], []
        for i in range(30):
            args = [BIN, "server", "list"] if what == "list" else [BIN, "settings", "set", "company_name", f"c{i}"]
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(args, env=env, stdout=subprocess.DEVNULL, check=True)
            walls.append((time.perf_counter() - t) * 1000)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
        print(f"servers={n} {what}: wall median {statistics.median(walls):.1f} ms, cpu median {statistics.median(cpus):.1f} ms")
