# Shared by the scripts that build test tools from Go modules. Source it.
#
# build_if_stale MODULE_DIR BINARY PACKAGE LDFLAGS
# Builds PACKAGE of the Go module in MODULE_DIR into "$out/BINARY", unless the
# binary exists and its stamp file matches the digest of the module's go.mod,
# go.sum and *.go files. The caller sets $out.
# NOTE: LDFLAGS are not part of the digest: after changing them, delete the
# stamp file to force a rebuild.
build_if_stale() {
  local module="$1" binary="$2" package="$3" ldflags="$4"
  local stamp="$out/.$binary.stamp"
  local digest
  digest="$(cat "$module/go.mod" "$module/go.sum" "$module"/*.go | sha256sum | cut -d' ' -f1)"
  if [[ -x "$out/$binary" && -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    return
  fi
  echo "building $binary (the first build takes several minutes)" >&2
  (cd "$module" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$binary" "$package")
  echo "$digest" > "$stamp"
}
