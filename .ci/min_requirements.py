"""Print setup.cfg's requirements pinned at their lower bounds (`make test-min` installs them)."""
import configparser
import re
import sys

config = configparser.ConfigParser()
config.read(sys.argv[1] if len(sys.argv) > 1 else "setup.cfg")
lines = config["options"]["install_requires"].split("\n")
for extra in sys.argv[2:]:
    lines += config["options.extras_require"][extra].split("\n")
for line in filter(None, (line.strip() for line in lines)):
    match = re.match(r"([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,;\s]+)", line)
    print(f"{match.group(1)}=={match.group(2)}.*" if match else line)  # the lowest series, its last patch
