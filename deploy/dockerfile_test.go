package deploy_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
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
		"-X 'github.com/prometheus/common/version.BuildUser=${BUILD_USER}'",
		"-X 'github.com/prometheus/common/version.BuildDate=${BUILD_DATE}'",
	} {
		if !strings.Contains(build, want) {
			t.Errorf("go build lacks %s", want)
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
