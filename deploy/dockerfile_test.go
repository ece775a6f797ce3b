package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

// The image cannot be built here: building needs the base images, and they
// come from a registry. Instead the Dockerfiles go through BuildKit's own
// frontend, the code `docker build --check` runs: it parses them, expands
// the build arguments, converts every stage to a build graph and applies
// every lint rule, with base images resolved offline to an empty config.

const (
	dockerfile    = "../Dockerfile"
	appDockerfile = "examples/app.Dockerfile"
)

// offlineResolver stands in for a registry: it records which base images a
// build would pull and gives each an empty image config.
type offlineResolver struct {
	mu   sync.Mutex
	refs []string
}

func (r *offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	r.mu.Lock()
	r.refs = append(r.refs, ref)
	r.mu.Unlock()
	return ref, digest.FromString(ref), []byte(`{"architecture":"amd64","os":"linux","config":{}}`), nil
}

// lintDockerfile runs BuildKit's Dockerfile lint and returns its warnings
// (rule: message), the build error if any, and the base images resolved.
func lintDockerfile(t *testing.T, name string, dt []byte, args map[string]string) (warnings []string, buildErr string, refs []string) {
	t.Helper()
	res := &offlineResolver{}
	sm := llb.NewSourceMap(nil, name, "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	out, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: args},
		SourceMap:    sm,
		MetaResolver: res,
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range out.Warnings {
		warnings = append(warnings, w.RuleName+": "+w.Detail)
	}
	if out.Error != nil {
		buildErr = out.Error.Message
	}
	slices.Sort(res.refs)
	return warnings, buildErr, slices.Compact(res.refs)
}

func TestDockerfileLint(t *testing.T) {
	for _, f := range []string{dockerfile, appDockerfile} {
		warnings, buildErr, _ := lintDockerfile(t, f, readFile(t, f), nil)
		for _, w := range warnings {
			t.Errorf("%s: %s", f, w)
		}
		if buildErr != "" {
			t.Errorf("%s: %s", f, buildErr)
		}
	}
	// The lint must catch mistakes.
	dt := readFile(t, dockerfile)
	for _, tc := range []struct{ from, to, rule string }{
		{`ENTRYPOINT ["/usr/bin/respawnd"]`, `ENTRYPOINT /usr/bin/respawnd`, "JSONArgsRecommended"},
		{"AS build", "as build", "FromAsCasing"},
		{"FROM ${BASE_IMAGE}", "FROM ${BASE_IMAGES}", "UndefinedArgInFrom"},
	} {
		bad := bytes.Replace(dt, []byte(tc.from), []byte(tc.to), 1)
		warnings, buildErr, _ := lintDockerfile(t, dockerfile, bad, nil)
		if !slices.ContainsFunc(warnings, func(w string) bool { return strings.HasPrefix(w, tc.rule+":") }) {
			t.Errorf("%q for %q: no %s warning (got %q, error %q)", tc.to, tc.from, tc.rule, warnings, buildErr)
		}
	}
}

// TestDockerfileBaseImagesAreArgs checks that the base images come from
// build arguments, so that the image builds from local or mirrored images.
func TestDockerfileBaseImagesAreArgs(t *testing.T) {
	_, _, refs := lintDockerfile(t, dockerfile, readFile(t, dockerfile), map[string]string{
		"GO_IMAGE":   "localhost/respawnd-builder:local",
		"BASE_IMAGE": "localhost/respawnd-base:local",
	})
	want := []string{"localhost/respawnd-base:local", "localhost/respawnd-builder:local"}
	if !slices.Equal(refs, want) {
		t.Errorf("base images %q, want %q", refs, want)
	}
	// scratch needs nothing from a registry at all.
	_, buildErr, refs := lintDockerfile(t, dockerfile, readFile(t, dockerfile), map[string]string{
		"GO_IMAGE":   "localhost/respawnd-builder:local",
		"BASE_IMAGE": "scratch",
	})
	if buildErr != "" || !slices.Equal(refs, want[1:]) {
		t.Errorf("with BASE_IMAGE=scratch: base images %q, error %q", refs, buildErr)
	}
}

// TestDockerfileContents checks what the image must do: a static,
// version-stamped binary in a minimal final stage that runs respawnd.
func TestDockerfileContents(t *testing.T) {
	ast, err := parser.Parse(bytes.NewReader(readFile(t, dockerfile)))
	if err != nil {
		t.Fatal(err)
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				defaults[kv.Key] = *kv.Value
			}
		}
	}
	if defaults["GO_IMAGE"] == "" || defaults["BASE_IMAGE"] == "" {
		t.Errorf("want ARG GO_IMAGE and ARG BASE_IMAGE with defaults before the first FROM, got %v", defaults)
	}
	if !strings.HasPrefix(defaults["BASE_IMAGE"], "gcr.io/distroless/static") && defaults["BASE_IMAGE"] != "scratch" {
		t.Errorf("BASE_IMAGE %q: want scratch or distroless static", defaults["BASE_IMAGE"])
	}
	if len(stages) != 2 || stages[0].BaseName != "${GO_IMAGE}" || stages[1].BaseName != "${BASE_IMAGE}" {
		t.Fatalf("want two stages FROM ${GO_IMAGE} and FROM ${BASE_IMAGE}")
	}
	var build string
	for _, c := range stages[0].Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			build = strings.Join(r.CmdLine, " ")
		}
	}
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", "./cmd/respawnd",
		"-X 'github.com/prometheus/common/version.Version=${VERSION}'",
		"-X 'github.com/prometheus/common/version.Revision=${REVISION}'",
		"-X 'github.com/prometheus/common/version.Branch=${BRANCH}'",
		// .git is not in the context; REVISION says the commit.
		"-buildvcs=false",
	} {
		if !strings.Contains(build, want) {
			t.Errorf("go build lacks %s", want)
		}
	}
	// Reproducible: nothing of the machine or the moment goes into the
	// binary (prometheus/common/version's BuildUser and BuildDate stay empty).
	for _, bad := range []string{"BuildUser", "BuildDate", "BUILD_USER", "BUILD_DATE", "$(date +", "$(date -u +", "hostname", "id -un"} {
		if bytes.Contains(readFile(t, dockerfile), []byte(bad)) {
			t.Errorf("%s mentions %s: no build user or date in a reproducible image", dockerfile, bad)
		}
	}
	var entrypoint, cmd []string
	var user string
	var exposed []string
	copied := false
	for _, c := range stages[1].Commands {
		switch c := c.(type) {
		case *instructions.EntrypointCommand:
			entrypoint = c.CmdLine
			if c.PrependShell {
				t.Error("ENTRYPOINT must be in exec form: respawnd is PID 1, not a shell")
			}
		case *instructions.CmdCommand:
			cmd = c.CmdLine
		case *instructions.UserCommand:
			user = c.User
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.CopyCommand:
			copied = copied || (c.From == "build" && slices.Contains(c.SourcePaths, "/out/respawnd") && c.DestPath == "/usr/bin/respawnd")
		case *instructions.RunCommand:
			t.Error("the final stage runs nothing: the base image may have no shell")
		}
	}
	if !copied {
		t.Error("the final stage must COPY --from=build /out/respawnd /usr/bin/respawnd")
	}
	if !slices.Equal(entrypoint, []string{"/usr/bin/respawnd"}) || !slices.Equal(cmd, []string{"run"}) {
		t.Errorf(`want ENTRYPOINT ["/usr/bin/respawnd"] and CMD ["run"], got %q and %q`, entrypoint, cmd)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Errorf("USER %q: want an unprivileged default user", user)
	}
	if want := strconv.Itoa(listenPort(t)); !slices.Equal(exposed, []string{want}) {
		t.Errorf("EXPOSE %q, want %s (web-listen-address)", exposed, want)
	}
}

// TestDockerignoreKeepsSources checks that .dockerignore keeps every file
// the build needs: go.mod, go.sum and the Go files of every package of the
// module that respawnd's binary is built from.
func TestDockerignoreKeepsSources(t *testing.T) {
	f, err := os.Open("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{".git/HEAD", "deploy/go.mod"} {
		if ok, _ := pm.MatchesOrParentMatches(must); !ok {
			t.Errorf(".dockerignore should leave out %s", must)
		}
	}
	goBin := requireTool(t, "go", "the Go toolchain")
	cmd := exec.Command(goBin, "list", "-e", "-deps", "-f",
		`{{if .Module}}{{if eq .Module.Path "github.com/respawnd/respawnd"}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`,
		"./cmd/respawnd")
	cmd.Dir = ".."
	// Never reach the network from a test.
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		rel, err := filepath.Rel(root, fields[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields[1:] {
			files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(files) < 5 {
		t.Fatalf("go list found only %q", files)
	}
	for _, f := range files {
		if ok, _ := pm.MatchesOrParentMatches(f); ok {
			t.Errorf(".dockerignore leaves out %s, which the build needs", f)
		}
	}
}

// ociLabels are the labels the image must carry (OCI image spec,
// annotations.md), with the value each gets from the build arguments below.
var ociLabels = map[string]string{
	"org.opencontainers.image.created":   "2024-01-02T03:04:05Z",
	"org.opencontainers.image.licenses":  "NOASSERTION",
	"org.opencontainers.image.source":    "https://github.com/respawnd/respawnd",
	"org.opencontainers.image.revision":  "0123456789abcdef0123456789abcdef01234567",
	"org.opencontainers.image.version":   "v1.2.3",
	"org.opencontainers.image.base.name": "gcr.io/distroless/static-debian12@sha256:" + strings.Repeat("b", 64),
}

// TestDockerfileReproducible converts the Dockerfile with the arguments of
// its documented build command, as BuildKit does, and checks what ends up
// in the image config: SOURCE_DATE_EPOCH as the image's time, the OCI
// labels, and base images pinned by digest when the arguments pin them.
func TestDockerfileReproducible(t *testing.T) {
	dt := readFile(t, dockerfile)
	goImage := "golang:1.26-bookworm@sha256:" + strings.Repeat("a", 64)
	res := &offlineResolver{}
	sm := llb.NewSourceMap(nil, dockerfile, "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	out, err := dockerfile2llb.Dockerfile2LLB(context.Background(), dt, dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{BuildArgs: map[string]string{
			"SOURCE_DATE_EPOCH": "1704164645", // 2024-01-02T03:04:05Z
			"CREATED":           ociLabels["org.opencontainers.image.created"],
			"VERSION":           ociLabels["org.opencontainers.image.version"],
			"REVISION":          ociLabels["org.opencontainers.image.revision"],
			"GO_IMAGE":          goImage,
			"BASE_IMAGE":        ociLabels["org.opencontainers.image.base.name"],
		}},
		SourceMap:    sm,
		MetaResolver: res,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Epoch == nil || out.Epoch.Unix() != 1704164645 {
		t.Errorf("SOURCE_DATE_EPOCH: epoch %v, want 2024-01-02T03:04:05Z", out.Epoch)
	}
	for k, want := range ociLabels {
		if got := out.Image.Config.Labels[k]; got != want {
			t.Errorf("label %s=%q, want %q", k, got, want)
		}
	}
	slices.Sort(res.refs)
	if want := []string{"docker.io/library/" + goImage, ociLabels["org.opencontainers.image.base.name"]}; !slices.Equal(slices.Compact(res.refs), want) {
		t.Errorf("digest-pinned base images resolved as %q, want %q", res.refs, want)
	}
	// The documented command passes every one of those arguments.
	for _, want := range []string{"--build-arg SOURCE_DATE_EPOCH", "--build-arg CREATED=$(date -u -d @$SOURCE_DATE_EPOCH +%Y-%m-%dT%H:%M:%SZ)", "--build-arg VERSION=", "--build-arg REVISION=", "rewrite-timestamp=true"} {
		for _, f := range []string{dockerfile, "README.md"} {
			if !bytes.Contains(readFile(t, f), []byte(want)) {
				t.Errorf("%s: the build command lacks %s", f, want)
			}
		}
	}
}

// digestRef is NAME[:TAG]@sha256:HEX.
var digestRef = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// TestDockerfileBaseImageDefaults checks the defaults of GO_IMAGE and
// BASE_IMAGE: pinned by digest, or else a named tag. The digests could not
// be resolved where this was written (no registry access); until they are
// filled in, the test says so in its log.
func TestDockerfileBaseImageDefaults(t *testing.T) {
	ast, err := parser.Parse(bytes.NewReader(readFile(t, dockerfile)))
	if err != nil {
		t.Fatal(err)
	}
	_, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value == nil {
				continue
			}
			v := *kv.Value
			switch {
			case digestRef.MatchString(v):
			case strings.Contains(v, "@"):
				t.Errorf("ARG %s=%s: a digest must be @sha256: and 64 hex digits", kv.Key, v)
			default:
				t.Logf("ARG %s=%s is not pinned by digest", kv.Key, v)
			}
		}
	}
}
