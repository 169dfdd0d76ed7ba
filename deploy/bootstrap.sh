#!/usr/bin/env bash
# Turn a fresh Debian/Ubuntu spot VM into N sweepd agents under systemd (cloud-init user data, or by
# hand as root). It creates the `sweepd` user, a virtualenv in /opt/sweepd with sweepd installed,
# /etc/sweepd/agent.env (mode 600), and enables sweepd-agent@1 ... sweepd-agent@N. Run it again to
# change the sweep or the count: if a setting changed the agents restart (their runs are requeued and
# resume from their checkpoints), and agents above N are stopped. It needs no other file: alone (as
# user data) it installs its own copy of the template unit. docs/deploy-systemd.md shows how.
#
# Usage:
#   SWEEPD_REDIS_URL=redis://:PASSWORD@HOST:6379/0 bash bootstrap.sh --sweep SWEEP_ID [options]
#
#   --sweep ID             the sweep to work (or SWEEPD_SWEEP_ID in the environment)
#   --agents N             agents on this machine (default 1; e.g. one per GPU)
#   --redis-url-file FILE  read the Redis URL from FILE ('-' for stdin) instead of SWEEPD_REDIS_URL.
#                          There is no --redis-url: a password on a command line shows in `ps`.
#   --package SPEC         what pip installs (default: sweepd): a version (sweepd==0.1.0), a
#                          checkout's path, a wheel, or a git+https URL
#   --extra-pip SPEC       another package for the training code's environment (repeatable)
#   --agent-args ARGS      extra flags for every `sweepd agent` (SWEEPD_AGENT_ARGS), e.g. "--max-retries 2"
#   --workdir DIR          the agents' working directory, where the sweep's `program` is found
#                          (default: the sweepd user's home, /var/lib/sweepd)
#   --pin-gpus             give agent i the GPU i-1 alone (CUDA_VISIBLE_DEVICES)
#   --unit FILE            the template unit to install (default: systemd/sweepd-agent@.service
#                          next to this script, else the copy inside this script)
#   --python PATH          the Python (3.10+) for the virtualenv (default: python3, from apt if missing)
#
# SWEEPD_BOOTSTRAP_ROOT=DIR installs under DIR instead of / and skips the root check (the tests run it
# so, with stand-ins for systemctl, useradd and Python).
#
# Example (4 agents, one per GPU, on a machine with the training code in /srv/train):
#   bash bootstrap.sh --sweep 8cq2x0rd --redis-url-file redis-url.txt \
#     --agents 4 --pin-gpus --workdir /srv/train --extra-pip torch
set -euo pipefail

ROOT=${SWEEPD_BOOTSTRAP_ROOT:-}
VENV=/opt/sweepd/venv # where the agents find it (under $ROOT only while it is installed)
PREFIX=$ROOT/opt/sweepd
ETC=$ROOT/etc/sweepd
UNIT_DIR=$ROOT/etc/systemd/system
BIN_DIR=$ROOT/usr/local/bin
HOME_DIR=/var/lib/sweepd
SERVICE_USER=sweepd

die() {
    echo "bootstrap.sh: error: $*" >&2
    exit 2
}

say() {
    echo "bootstrap.sh: $*" >&2
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# The template unit, for when no systemd/sweepd-agent@.service is next to this script (user data):
# deploy/systemd/sweepd-agent@.service without its comments, which say why each line is there. A test
# keeps the two the same.
template_unit() {
    cat <<'UNIT'
# sweepd-agent@.service, written by bootstrap.sh (see deploy/systemd/ for why each line is there).
[Unit]
Description=sweepd agent %i
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=30min
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
EnvironmentFile=/etc/sweepd/agent.env
EnvironmentFile=-/etc/sweepd/agent-%i.env
Environment=PYTHONUNBUFFERED=1
ExecStartPre=+-/usr/bin/nvidia-modprobe -u -c=0
ExecStart=/usr/local/bin/sweepd agent ${SWEEPD_SWEEP_ID} $SWEEPD_AGENT_ARGS
User=sweepd
Group=sweepd
WorkingDirectory=~
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=150
Restart=on-failure
RestartSec=5
RestartPreventExitStatus=2
WatchdogSec=60
OOMPolicy=continue
LimitNOFILE=65536
LimitMEMLOCK=infinity
NoNewPrivileges=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes

[Install]
WantedBy=multi-user.target
UNIT
}

sweep_id=${SWEEPD_SWEEP_ID:-}
agents=1
url_file=""
package=sweepd
extra_pip=()
agent_args=""
workdir=""
pin_gpus=0
unit=""
python=""

while (($# > 0)); do
    case $1 in
        --sweep) sweep_id=${2:?--sweep needs a value}; shift 2 ;;
        --agents) agents=${2:?--agents needs a value}; shift 2 ;;
        --redis-url-file) url_file=${2:?--redis-url-file needs a value}; shift 2 ;;
        --package) package=${2:?--package needs a value}; shift 2 ;;
        --extra-pip) extra_pip+=("${2:?--extra-pip needs a value}"); shift 2 ;;
        --agent-args) agent_args=${2?--agent-args needs a value}; shift 2 ;;
        --workdir) workdir=${2:?--workdir needs a value}; shift 2 ;;
        --pin-gpus) pin_gpus=1; shift ;;
        --unit) unit=${2:?--unit needs a value}; shift 2 ;;
        --python) python=${2:?--python needs a value}; shift 2 ;;
        -h | --help) usage 0 ;;
        --redis-url | --redis-url=*) die "no --redis-url: pass the URL in SWEEPD_REDIS_URL or --redis-url-file" ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# --- check everything before changing anything -------------------------------------------------
[[ -n $ROOT || $EUID -eq 0 ]] || die "run as root (it creates a user, /etc/sweepd and systemd units)"
[[ -n $sweep_id ]] || die "no sweep: pass --sweep ID or set SWEEPD_SWEEP_ID"
[[ $sweep_id =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "not a sweep ID: $sweep_id"
[[ $agents =~ ^[1-9][0-9]*$ ]] || die "--agents must be a positive integer, not: $agents"

if [[ -n $url_file ]]; then
    if [[ $url_file == - ]]; then
        IFS= read -r redis_url || [[ -n ${redis_url:-} ]] || die "no Redis URL on stdin"
    else
        [[ -r $url_file ]] || die "cannot read $url_file"
        IFS= read -r redis_url <"$url_file" || [[ -n ${redis_url:-} ]] || die "$url_file is empty"
    fi
else
    redis_url=${SWEEPD_REDIS_URL:-}
fi
[[ -n $redis_url ]] || die "no Redis URL: set SWEEPD_REDIS_URL or pass --redis-url-file"
[[ $redis_url =~ ^(redis|rediss|unix):// ]] || die "the Redis URL must start with redis://, rediss:// or unix://"
for value in "$redis_url" "$agent_args"; do
    [[ $value != *"'"* && $value != *$'\n'* ]] || die "values for agent.env must not contain ' or a newline"
done

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
if [[ -z $unit && -r $script_dir/systemd/sweepd-agent@.service ]]; then
    unit=$script_dir/systemd/sweepd-agent@.service
fi
[[ -z $unit || -r $unit ]] || die "no unit file at $unit"
[[ -z $workdir || $workdir == /* ]] || die "--workdir must be an absolute path"

# --- system packages and the Python --------------------------------------------------------------
if [[ -z $python ]]; then
    if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        say "installing python3 and python3-venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q python3 python3-venv
    fi
    python=python3
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$python is older than 3.10"

# --- the user -------------------------------------------------------------------------------------
if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    say "creating user $SERVICE_USER (home $HOME_DIR)"
    useradd --system --user-group --create-home --home-dir "$HOME_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
fi
for group in video render; do # GPU device nodes, where the driver makes them group-owned
    if getent group "$group" >/dev/null; then
        usermod --append --groups "$group" "$SERVICE_USER"
    fi
done

# --- the virtualenv -------------------------------------------------------------------------------
if [[ ! -x $PREFIX/venv/bin/python ]]; then
    say "creating the virtualenv $PREFIX/venv"
    install -d -m 755 "$PREFIX"
    "$python" -m venv "$PREFIX/venv"
fi
say "installing $package ${extra_pip[*]}"
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade pip
"$PREFIX/venv/bin/python" -m pip install --quiet --upgrade "$package" "${extra_pip[@]}"
"$PREFIX/venv/bin/sweepd" --version >/dev/null || die "sweepd did not install from $package"
install -d -m 755 "$BIN_DIR"
ln -sfn "$PREFIX/venv/bin/sweepd" "$BIN_DIR/sweepd" # the units' ExecStart

# --- settings: written only when they change, so a rerun restarts only what it must ----------------
changed=()

# write_file MODE PATH: stdin to PATH with MODE, root-owned; records PATH in `changed` if it differs.
write_file() {
    local mode=$1 path=$2 tmp
    tmp=$(mktemp "$path.XXXXXX")
    chmod "$mode" "$tmp"
    cat >"$tmp"
    if [[ -f $path ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$path"
        changed+=("$path")
    fi
}

umask 077
install -d -m 755 "$ETC" "$UNIT_DIR"
write_file 600 "$ETC/agent.env" <<EOF
# Written by bootstrap.sh. Holds the Redis password: root only (mode 600).
SWEEPD_REDIS_URL='$redis_url'
SWEEPD_SWEEP_ID='$sweep_id'
SWEEPD_AGENT_ARGS='$agent_args'
EOF

for ((i = 1; i <= agents; i++)); do
    if ((pin_gpus)); then
        write_file 644 "$ETC/agent-$i.env" <<EOF
# Written by bootstrap.sh --pin-gpus: sweepd-agent@$i uses GPU $((i - 1)) alone.
CUDA_VISIBLE_DEVICES=$((i - 1))
EOF
    elif [[ -f $ETC/agent-$i.env ]] && grep -q 'bootstrap.sh --pin-gpus' "$ETC/agent-$i.env"; then
        rm -f "$ETC/agent-$i.env"
        changed+=("$ETC/agent-$i.env")
    fi
done

if [[ -n $unit ]]; then
    write_file 644 "$UNIT_DIR/sweepd-agent@.service" <"$unit"
else
    write_file 644 "$UNIT_DIR/sweepd-agent@.service" < <(template_unit)
fi
dropin_dir=$UNIT_DIR/sweepd-agent@.service.d
install -d -m 755 "$dropin_dir"
# systemd's PATH does not have the virtualenv: without this, a sweep's ${interpreter} (`python`, where
# there is one on PATH) would be the system's Python, without sweepd and the --extra-pip packages.
write_file 644 "$dropin_dir/venv.conf" <<EOF
# Written by bootstrap.sh: the virtualenv first on PATH, so \${interpreter} is its Python.
[Service]
Environment=PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
if [[ -n $workdir ]]; then
    write_file 644 "$dropin_dir/workdir.conf" <<EOF
# Written by bootstrap.sh --workdir: where the sweep's program is found.
[Service]
WorkingDirectory=$workdir
EOF
elif [[ -f $dropin_dir/workdir.conf ]]; then
    rm -f "$dropin_dir/workdir.conf"
    changed+=("$dropin_dir/workdir.conf")
fi

# --- the agents -----------------------------------------------------------------------------------
systemctl daemon-reload

# Agents above N (from an earlier run with a larger --agents): stop them.
while read -r name _; do
    index=${name#sweepd-agent@}
    index=${index%.service}
    if [[ $index =~ ^[0-9]+$ ]] && ((index > agents)); then
        say "stopping $name"
        systemctl disable --now "$name"
    fi
done < <(systemctl list-units --all --plain --no-legend 'sweepd-agent@*.service')

units=()
for ((i = 1; i <= agents; i++)); do
    units+=("sweepd-agent@$i.service")
done
systemctl enable "${units[@]}"
if ((${#changed[@]} > 0)); then
    say "settings changed (${changed[*]}): (re)starting ${#units[@]} agent(s)"
    verb=restart
else
    verb=start
fi
systemctl "$verb" "${units[@]}" || die "agents did not start: journalctl -u 'sweepd-agent@*'"
say "done: ${#units[@]} agent(s) on sweep $sweep_id; see: systemctl status 'sweepd-agent@*'"
