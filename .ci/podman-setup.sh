#!/usr/bin/env bash
# podman-setup.sh prepares this machine for the Podman runtime tests: it installs
# Podman and runc, writes a containers.conf that works on these hosts, creates the
# unprivileged user that owns the rootless Podman service, starts a rootful and a
# rootless API service, and loads the etcd test image into both storages.
#
# Run as root. Idempotent: a second run keeps what is already there and restarts
# nothing that is healthy. Prints the environment the tests read, e.g.
#   eval "$(.ci/podman-setup.sh | grep ^export)"
#
# Inputs (environment, all optional):
#   ETCD_AGENT_TEST_USER   rootless user (default etcdtest)
#   ETCD_IMAGE             image tag to load (default gcr.io/etcd-development/etcd:<etcd module version>)
#   IMAGE_ARCHIVE          an image archive (podman save) to load instead of building
#   SKIP_IMAGE=1           do not touch images
set -euo pipefail

log() { printf 'podman-setup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates a user)"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
user=${ETCD_AGENT_TEST_USER:-etcdtest}

# 1. Packages. runc, not crun: crun rejects the hybrid cgroup setup on these hosts.
need=()
for p in podman runc uidmap slirp4netns fuse-overlayfs; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. containers.conf: runc, and ulimits at or under this machine's hard limit
#    (Podman's default nofile=1048576 is refused where the hard limit is lower).
clamp() { # wanted hard-limit
  if [[ $2 != unlimited ]] && (($2 < $1)); then echo "$2"; else echo "$1"; fi
}
nofile=$(clamp 65536 "$(ulimit -Hn)")
# Rootful Podman sets nproc=1048576+ unless told; runc then fails with
# "error setting rlimit type 6" where the hard limit is lower. The Podman service
# here runs with nproc 32768 whatever its parent had: stay at or under that.
nproc=$(clamp 32768 "$(ulimit -Hu)")
conf=/etc/containers/containers.conf
want=$(cat <<EOF
# Written by etcd-agent .ci/podman-setup.sh
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
EOF
)
mkdir -p /etc/containers
conf_changed=0
if [[ ! -f $conf ]] || [[ "$(cat "$conf")" != "$want" ]]; then
  log "writing $conf (runtime runc, nofile ${nofile}, nproc ${nproc})"
  printf '%s\n' "$want" >"$conf"
  conf_changed=1
fi

# 3. The rootless user with subordinate id ranges.
if ! id "$user" >/dev/null 2>&1; then
  log "creating user $user"
  useradd --create-home --shell /bin/bash "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
grep -q "^${user}:" /etc/subuid || echo "${user}:200000:65536" >>/etc/subuid
grep -q "^${user}:" /etc/subgid || echo "${user}:200000:65536" >>/etc/subgid

# 4. Linger equivalent: the user's runtime dir, as systemd-logind would make it.
rundir=/run/user/$uid
install -d -m 0700 -o "$uid" -g "$gid" "$rundir"

as_user() {
  # runuser keeps no session; XDG_RUNTIME_DIR is what rootless Podman keys on.
  runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
    USER="$user" LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
    XDG_RUNTIME_DIR="$rundir" "$@"
}

# A service whose socket answers /_ping is healthy; otherwise (re)start it.
ping_socket() {
  local sock=$1
  [[ -S $sock ]] || return 1
  [[ "$(curl -s --max-time 5 --unix-socket "$sock" http://d/_ping 2>/dev/null)" == OK ]]
}
command -v curl >/dev/null || { apt-get install -y -qq curl >/dev/null; }

state=/run/etcd-agent-ci
mkdir -p "$state" /var/log/etcd-agent-ci
start_service() { # name socket-path command...
  local name=$1 sock=$2; shift 2
  local pidfile=$state/podman-$name.pid
  # The service's processes (its session: setsid made the pid its leader)
  # whose working directory is gone.
  local gone=""
  if [[ -f $pidfile ]]; then
    for p in $(pgrep -s "$(cat "$pidfile")" 2>/dev/null); do
      [[ $(readlink "/proc/$p/cwd" 2>/dev/null) == *" (deleted)" ]] && gone="$(readlink "/proc/$p/cwd")"
    done
  fi
  if ((conf_changed)) && [[ -f $pidfile ]]; then
    # A service started by an earlier run keeps the old containers.conf: restart it.
    log "restarting $name service for the new $conf"
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true
    sleep 1
  elif [[ -n $gone ]]; then
    # Started by an earlier run from a checkout since deleted: its containers
    # inherit that cwd and runc fails every start ("write child: broken
    # pipe") although /_ping answers.
    log "restarting $name service: its working directory $gone is gone"
    kill -- "-$(cat "$pidfile")" 2>/dev/null || true
    sleep 1
  elif ping_socket "$sock"; then
    log "$name service already up at $sock"
    return
  fi
  rm -f "$sock" "$pidfile"
  log "starting $name service at $sock"
  # From /, so the service outlives the checkout that started it.
  (cd / && exec setsid "$@" >"/var/log/etcd-agent-ci/podman-$name.log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    ping_socket "$sock" && return
    sleep 0.2
  done
  tail -20 "/var/log/etcd-agent-ci/podman-$name.log" >&2 || true
  die "$name podman service did not come up at $sock"
}

rootful_sock=/run/podman/podman.sock
rootless_sock=$rundir/podman/podman.sock
mkdir -p /run/podman
start_service rootful "$rootful_sock" podman system service --time=0 "unix://$rootful_sock"
as_user mkdir -p "$rundir/podman"
# After a containers.conf change, let rootless Podman pick up the new runtime
# (migrate stops the user's containers, so only then).
if ((conf_changed)); then as_user podman system migrate >/dev/null 2>&1 || true; fi
start_service rootless "$rootless_sock" \
  runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
  USER="$user" LOGNAME="$user" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  XDG_RUNTIME_DIR="$rundir" podman system service --time=0 "unix://$rootless_sock"

# 5. The etcd test image, into rootful and rootless storage.
if [[ ${SKIP_IMAGE:-0} != 1 ]]; then
  if [[ -z ${ETCD_IMAGE:-} ]]; then
    ver=$(cd "$repo" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3 2>/dev/null || true)
    [[ -n $ver ]] || die "cannot tell the etcd version: set ETCD_IMAGE"
    ETCD_IMAGE=gcr.io/etcd-development/etcd:$ver
  fi
  if ! podman image exists "$ETCD_IMAGE"; then
    if [[ -n ${IMAGE_ARCHIVE:-} ]]; then
      podman load -q -i "$IMAGE_ARCHIVE" >/dev/null
    else
      log "building $ETCD_IMAGE (image/build.sh, as make image does)"
      "$repo/image/build.sh" >&2
    fi
  fi
  podman image exists "$ETCD_IMAGE" || die "image $ETCD_IMAGE missing after build"
  id_root=$(podman image inspect -f '{{.Id}}' "$ETCD_IMAGE")
  id_user=$(as_user podman image inspect -f '{{.Id}}' "$ETCD_IMAGE" 2>/dev/null || true)
  if [[ $id_root != "$id_user" ]]; then
    log "loading $ETCD_IMAGE into $user's storage"
    tmp=$(mktemp -d)
    chmod 0755 "$tmp"
    podman save -q -o "$tmp/etcd.tar" "$ETCD_IMAGE"
    chmod 0644 "$tmp/etcd.tar"
    (cd / && as_user podman load -q -i "$tmp/etcd.tar" >/dev/null)
    rm -rf "$tmp"
  fi
fi

cat <<EOF
export ETCD_AGENT_TEST_PODMAN_SOCKET=unix://$rootful_sock
export ETCD_AGENT_TEST_PODMAN_ROOTLESS_SOCKET=unix://$rootless_sock
export ETCD_AGENT_TEST_PODMAN_ROOTLESS_USER=$user
EOF
