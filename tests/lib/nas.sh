# nas.sh — the domain files of a CloudStack NAS backup (sourced; bash).
#
# Every NAS fixture (tests/fuse/mkrepo.sh, tests/catalog/test-nas.sh,
# tests/lib/vm.sh, contrib/make-demo-repo.sh) writes what nasbackup.sh
# writes next to the disk images; they are written here once so that the
# fixtures cannot drift apart from each other or from what the layout
# reads (catalog/layout-nas.c).  A disk is DEV=SOURCE (a qcow2 file disk,
# the primary-storage path), DEV=cdrom (a CD-ROM drive, no medium) or
# bridge=BRIDGE,MAC (an interface).
#   nas_domain_xml NAME UUID ITEM...   domain-config.xml (virsh dumpxml)
#   nas_domblklist ITEM...             domblklist.xml (virsh domblklist;
#                                      a CD-ROM's source is "-")
#   nas_dominfo NAME                   dominfo.xml

nas_domain_xml() {
  local name=$1 uuid=$2 it dev v
  shift 2
  cat <<XML
<domain type='kvm'>
  <name>$name</name>
  <uuid>$uuid</uuid>
  <memory unit='KiB'>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
XML
  for it in "$@"; do
    dev=${it%%=*} v=${it#*=}
    if [ "$dev" = bridge ]; then
      printf "    <interface type='bridge'>\n      <mac address='%s'/>\n      <source bridge='%s'/>\n      <model type='virtio'/>\n    </interface>\n" \
        "${v#*,}" "${v%%,*}"
    elif [ "$v" = cdrom ]; then
      printf "    <disk type='file' device='cdrom'>\n      <target dev='%s' bus='ide'/>\n    </disk>\n" "$dev"
    else
      printf "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='%s'/>\n      <target dev='%s' bus='virtio'/>\n    </disk>\n" \
        "$v" "$dev"
    fi
  done
  printf '  </devices>\n</domain>\n'
}

nas_domblklist() {
  local it dev v
  printf ' Target   Source\n------------------------------------------------\n'
  for it in "$@"; do
    dev=${it%%=*} v=${it#*=}
    [ "$dev" = bridge ] && continue
    [ "$v" = cdrom ] && v=-
    printf ' %-8s %s\n' "$dev" "$v"
  done
  echo
}

nas_dominfo() { printf '<dominfo><name>%s</name></dominfo>\n' "$1"; }
