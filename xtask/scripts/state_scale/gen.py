# Fills the state.json of an initialised home with N servers and 10 deployments each.
import json, sys
home, n = sys.argv[1], int(sys.argv[2])
p = f"{home}/state.json"
s = json.load(open(p))
s["servers"], s["deployments"] = {}, {}
for i in range(n):
    name = f"server-{i:04d}"
    s["servers"][name] = {
        "name": name, "provider": "hetzner", "provider_id": 40000000 + i,
        "host": f"10.{i//65536}.{(i//256)%256}.{i%256}", "ssh_port": 22, "ssh_user": "root",
        "ssh_key_secret": f"server.{name}.ssh_key",
        "host_key_fingerprint": "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s",
        "dns": {"zone_name": "example.com", "subdomain": f"c{i}"},
        "server_type": "cx22", "location": "fsn1", "image": "debian-12",
        "labels": {"client": f"client-{i%37}"}, "status": "ready",
        "setup": {"completed_steps": ["wait_ssh","packages","timezone","docker","swarm","firewall"],
                  "completed_at": "2026-12-01T00:00:00Z"},
        "created_at": "2026-12-01T00:00:00Z"}
    s["deployments"][name] = {f"app{a}": {
        "app": f"app{a}", "version": "1.2.3", "stack_name": f"app{a}",
        "domains": [f"app{a}.c{i}.example.com"], "dns_record_ids": [f"{i*100+a:032x}"],
        "dependencies": ["postgres", "redis"], "status": "running",
        "deployed_at": "2026-12-01T00:00:00Z"} for a in range(10)}
json.dump(s, open(p, "w"), indent=2)
