package deploy_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// kustomizeBuild renders a kustomization directory the way `kubectl apply
// -k` does, with kustomize's own library, and decodes every object
// strictly.
func kustomizeBuild(t *testing.T, dir string) []any {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []any
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(y)
		if err != nil {
			t.Fatalf("kustomize build %s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// TestKustomizeBuild renders deploy/kubernetes as `kubectl apply -k` does:
// every manifest it lists comes out, each one decoding strictly.
func TestKustomizeBuild(t *testing.T) {
	objs := kustomizeBuild(t, k8sDir)
	want := 0
	for f, fileObjs := range manifests(t) {
		if f != "sidecar-example.yaml" {
			want += len(fileObjs)
		}
	}
	if len(objs) != want {
		t.Errorf("kustomize build: %d objects, want %d", len(objs), want)
	}
}

// TestReleaseLabelForKubePrometheusStack uncomments the release label of
// kustomization.yaml, as deploy/README.md tells kube-prometheus-stack users
// to, and checks that the ServiceMonitor and the PrometheusRule carry it
// while no selector and no pod template changes (a changed DaemonSet
// selector could not be applied over the old one).
func TestReleaseLabelForKubePrometheusStack(t *testing.T) {
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b := readFile(t, f)
		if filepath.Base(f) == "kustomization.yaml" {
			var out []string
			on := false
			for _, line := range strings.Split(string(b), "\n") {
				if line == "# labels:" {
					on = true
				}
				if on {
					line = strings.TrimPrefix(line, "# ")
				}
				out = append(out, line)
			}
			if !on {
				t.Fatal("kustomization.yaml: no commented labels: block")
			}
			b = []byte(strings.Join(out, "\n"))
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base := kustomizeBuild(t, k8sDir)
	labelled := kustomizeBuild(t, dir)
	if len(base) != len(labelled) {
		t.Fatalf("%d objects with the label, %d without", len(labelled), len(base))
	}
	var kinds []string
	for i := range base {
		a, b := asMap(t, base[i]), asMap(t, labelled[i])
		meta, _ := b["metadata"].(map[string]any)
		lbls, _ := meta["labels"].(map[string]any)
		if s, _ := lbls["release"].(string); s == "" {
			t.Errorf("%s %s: no release label", b["kind"], meta["name"])
		}
		kinds = append(kinds, b["kind"].(string))
		// Apart from metadata.labels.release, nothing changes.
		delete(lbls, "release")
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s %s: the release label changed more than the object's own labels", b["kind"], meta["name"])
		}
	}
	for _, k := range []string{"ServiceMonitor", "PrometheusRule"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("no %s in the build (%v)", k, kinds)
		}
	}
}

// asMap turns a typed object into its generic form.
func asMap(t *testing.T, obj any) map[string]any {
	t.Helper()
	y, err := sigsyaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := sigsyaml.Unmarshal(y, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
