package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

const k8sDir = "kubernetes"

// newObject returns an empty object of the Go type Kubernetes (or
// prometheus-operator) decodes apiVersion/kind into.
func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, nil
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "apps/v1 DaemonSet":
		return &appsv1.DaemonSet{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, nil
	case "monitoring.coreos.com/v1 PodMonitor":
		return &monitoringv1.PodMonitor{}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, nil
	}
	return nil, fmt.Errorf("unexpected kind %q of apiVersion %q", kind, apiVersion)
}

// unmarshalStrict decodes JSON the way the Kubernetes API server's strict
// decoder does: field names match case-sensitively, and unknown or
// duplicate fields are errors.
func unmarshalStrict(js []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeStrict decodes one YAML document into its typed object. Unknown or
// misspelt fields, duplicate keys and values of the wrong type are errors,
// as with `kubectl apply --validate=strict`.
func decodeStrict(doc []byte) (any, error) {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return nil, err
	}
	obj, err := newObject(tm.APIVersion, tm.Kind)
	if err != nil {
		return nil, err
	}
	if err := unmarshalStrict(js, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

func decodeManifests(t *testing.T, file string) []any {
	t.Helper()
	var objs []any
	for i, doc := range yamlDocuments(readFile(t, file)) {
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i+1, err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// manifestFiles lists the manifests: every YAML file in kubernetes/ but the
// kustomization.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "kustomization.yaml" })
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	return files
}

// manifests are all objects, by file.
func manifests(t *testing.T) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, f := range manifestFiles(t) {
		out[filepath.Base(f)] = decodeManifests(t, f)
	}
	return out
}

// find returns the one object of type T in a file.
func find[T any](t *testing.T, m map[string][]any, file string) T {
	t.Helper()
	var found []T
	for _, o := range m[file] {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%s: %d objects of type %T, want 1", file, len(found), zero)
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	for file, objs := range manifests(t) {
		if len(objs) == 0 {
			t.Errorf("%s: no objects", file)
		}
	}
}

// TestStrictDecodeRejectsMistakes proves the decoder is strict: each
// mistake, put into a real manifest, must fail.
func TestStrictDecodeRejectsMistakes(t *testing.T) {
	for _, tc := range []struct{ file, from, to string }{
		{"daemonset.yaml", "      hostPID: true\n", "      hostPid: true\n"},
		{"daemonset.yaml", "containerPort:", "containerport:"},
		{"daemonset.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: yes please"},
		{"daemonset.yaml", "      hostPID: true\n", "      hostPID: true\n      hostPID: false\n"},
		{"service.yaml", "targetPort: metrics", "targetPort: {name: metrics}"},
		{"servicemonitor.yaml", "relabelings:", "relabellings:"},
		{"servicemonitor.yaml", "jobLabel:", "joblabel:"},
		{"sidecar-example.yaml", "podMetricsEndpoints:", "podMetricEndpoints:"},
		{"namespace.yaml", "kind: Namespace", "kind: Namespaces"},
	} {
		b := readFile(t, filepath.Join(k8sDir, tc.file))
		if !bytes.Contains(b, []byte(tc.from)) {
			t.Fatalf("%s: no %q to change", tc.file, tc.from)
		}
		b = bytes.Replace(b, []byte(tc.from), []byte(tc.to), 1)
		failed := false
		for _, doc := range yamlDocuments(b) {
			if _, err := decodeStrict(doc); err != nil {
				failed = true
			}
		}
		if !failed {
			t.Errorf("%s with %q for %q: decoded without error", tc.file, tc.to, tc.from)
		}
	}
}

func TestKustomization(t *testing.T) {
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, filepath.Join(k8sDir, "kustomization.yaml"))))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range manifestFiles(t) {
		if b := filepath.Base(f); b != "sidecar-example.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want %v", got, want)
	}
	// Everything it applies lives in the respawnd namespace.
	m := manifests(t)
	for _, f := range want {
		for _, o := range m[f] {
			mo, ok := o.(metav1.Object)
			if !ok {
				t.Fatalf("%s: %T has no metadata", f, o)
			}
			if _, isNS := o.(*corev1.Namespace); !isNS && mo.GetNamespace() != "respawnd" {
				t.Errorf("%s: %s in namespace %q, want respawnd", f, mo.GetName(), mo.GetNamespace())
			}
		}
	}
}

// minimalLevel returns the least permissive Pod Security level a pod meets,
// and the reasons it fails the next stricter one.
func minimalLevel(t *testing.T, meta *metav1.ObjectMeta, spec *corev1.PodSpec) (psaapi.Level, []string) {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, level := range []psaapi.Level{psaapi.LevelRestricted, psaapi.LevelBaseline, psaapi.LevelPrivileged} {
		res := policy.AggregateCheckResults(ev.EvaluatePod(psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}, meta, spec))
		if res.Allowed {
			return level, reasons
		}
		reasons = slices.Clone(res.ForbiddenReasons)
		sort.Strings(reasons)
	}
	t.Fatal("a pod that the privileged level forbids")
	return "", nil
}

func levelRank(l psaapi.Level) int {
	return slices.Index([]psaapi.Level{psaapi.LevelRestricted, psaapi.LevelBaseline, psaapi.LevelPrivileged}, l)
}

// TestPodSecurity checks the Pod Security level each pod needs with the
// evaluator Pod Security admission itself uses: the node agent is
// privileged, for exactly the reasons documented in daemonset.yaml, and its
// namespace allows it; the exec entrypoint example meets restricted.
func TestPodSecurity(t *testing.T) {
	m := manifests(t)
	ds := find[*appsv1.DaemonSet](t, m, "daemonset.yaml")
	level, reasons := minimalLevel(t, &ds.Spec.Template.ObjectMeta, &ds.Spec.Template.Spec)
	if level != psaapi.LevelPrivileged {
		t.Errorf("node agent: level %s, want privileged (documented in namespace.yaml)", level)
	}
	wantReasons := []string{"host namespaces", "hostPath volumes", "privileged"}
	if !slices.Equal(reasons, wantReasons) {
		t.Errorf("node agent fails baseline for %q, want exactly %q: a new privilege must be documented in daemonset.yaml and here", reasons, wantReasons)
	}
	ns := find[*corev1.Namespace](t, m, "namespace.yaml")
	for _, mode := range []string{"enforce", "warn", "audit"} {
		l, err := psaapi.ParseLevel(ns.Labels["pod-security.kubernetes.io/"+mode])
		if err != nil {
			t.Errorf("namespace: %s level: %v", mode, err)
			continue
		}
		if levelRank(l) < levelRank(level) {
			t.Errorf("namespace: %s level %s does not allow the node agent (%s)", mode, l, level)
		}
		if v := ns.Labels["pod-security.kubernetes.io/"+mode+"-version"]; v != "latest" {
			t.Errorf("namespace: %s-version %q, want latest", mode, v)
		}
	}

	app := find[*appsv1.Deployment](t, m, "sidecar-example.yaml")
	level, reasons = minimalLevel(t, &app.Spec.Template.ObjectMeta, &app.Spec.Template.Spec)
	if level != psaapi.LevelRestricted {
		t.Errorf("exec entrypoint example: level %s (fails restricted for %q), want restricted", level, reasons)
	}
}

// podPort returns the container port of a named port of a pod.
func podPort(spec *corev1.PodSpec, name string) (int32, bool) {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

// TestNodeAgentWiring checks that the objects of the node agent fit
// together: selectors, ports, the ConfigMap, and the privileges respawnd
// needs.
func TestNodeAgentWiring(t *testing.T) {
	m := manifests(t)
	port := int32(listenPort(t))
	ds := find[*appsv1.DaemonSet](t, m, "daemonset.yaml")
	sa := find[*corev1.ServiceAccount](t, m, "daemonset.yaml")
	cm := find[*corev1.ConfigMap](t, m, "configmap.yaml")
	svc := find[*corev1.Service](t, m, "service.yaml")
	sm := find[*monitoringv1.ServiceMonitor](t, m, "servicemonitor.yaml")
	pod := &ds.Spec.Template

	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("DaemonSet selector does not match its pods: %v", err)
	}
	if p, ok := podPort(&pod.Spec, "metrics"); !ok || p != port {
		t.Errorf("DaemonSet: metrics port %d, want %d (web-listen-address)", p, port)
	}
	if pod.Spec.ServiceAccountName != sa.Name {
		t.Errorf("DaemonSet: service account %q, want %q", pod.Spec.ServiceAccountName, sa.Name)
	}
	if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("DaemonSet: respawnd needs no API token; automountServiceAccountToken must be false")
	}
	if !pod.Spec.HostPID {
		t.Error("DaemonSet: hostPID is needed to see the host's processes")
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("DaemonSet: %d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("DaemonSet: the container must be privileged (for /dev/kmsg) with a read-only root file system")
	}
	// Guaranteed QoS: oom_score_adj -997 for respawnd.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
		if req.IsZero() || req.Cmp(lim) != 0 {
			t.Errorf("DaemonSet: %s request %s and limit %s must be equal (Guaranteed QoS)", r, req.String(), lim.String())
		}
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("DaemonSet: volume %s is not mounted", v.Name)
		}
	}
	for name := range mounts {
		if _, ok := vols[name]; !ok {
			t.Errorf("DaemonSet: mount of unknown volume %s", name)
		}
	}
	if sm, ok := mounts["state"]; !ok || sm.MountPath != "/run/respawnd" || sm.ReadOnly || vols["state"].EmptyDir == nil {
		t.Error("DaemonSet: respawnd needs a writable --state.dir (/run/respawnd) on its read-only root file system")
	}
	for _, pr := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Port.String() != "metrics" || !strings.HasPrefix(pr.HTTPGet.Path, "/-/") {
			t.Errorf("DaemonSet: want readiness and liveness probes on respawnd's /-/ready and /-/healthy, got %+v", pr)
		}
	}
	if v := vols["kmsg"]; v.HostPath == nil || v.HostPath.Path != "/dev/kmsg" || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathCharDev {
		t.Error("DaemonSet: kmsg must be the host's /dev/kmsg character device")
	}
	cfg := vols["config"]
	if cfg.ConfigMap == nil || cfg.ConfigMap.Name != cm.Name {
		t.Fatalf("DaemonSet: config volume does not use ConfigMap %s", cm.Name)
	}
	wantArg := "--config=" + mounts["config"].MountPath + "/respawnd.yml"
	if !slices.Contains(c.Args, wantArg) {
		t.Errorf("DaemonSet: args %q lack %q", c.Args, wantArg)
	}
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("DaemonSet: args %q, want the run subcommand first", c.Args)
	}
	var conf map[string]any
	dec := yaml.NewDecoder(strings.NewReader(cm.Data["respawnd.yml"]))
	if err := dec.Decode(&conf); err != nil {
		t.Errorf("ConfigMap respawnd.yml: %v", err)
	}
	for k := range conf {
		if k != "limits" && k != "programs" {
			t.Errorf("ConfigMap respawnd.yml: unknown key %q", k)
		}
	}

	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
		t.Error("Service selector does not match the DaemonSet's pods")
	}
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == "metrics" {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	if svcPort == nil || svcPort.Port != port || svcPort.TargetPort.String() != "metrics" {
		t.Errorf("Service: want port metrics %d to targetPort metrics, got %+v", port, svcPort)
	}

	smSel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || !smSel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector does not match the Service: %v", err)
	}
	if job := svc.Labels[sm.Spec.JobLabel]; job != "respawnd" {
		t.Errorf("ServiceMonitor: job would be %q; the alerts and the dashboard expect respawnd", job)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" {
		t.Errorf("ServiceMonitor: want one endpoint on port metrics, got %+v", sm.Spec.Endpoints)
	}
}

// TestExecEntrypointExample checks the application that runs under
// respawnd exec.
func TestExecEntrypointExample(t *testing.T) {
	m := manifests(t)
	port := int32(listenPort(t))
	app := find[*appsv1.Deployment](t, m, "sidecar-example.yaml")
	pm := find[*monitoringv1.PodMonitor](t, m, "sidecar-example.yaml")
	pod := &app.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	cmd := c.Command
	sep := slices.Index(cmd, "--")
	if len(cmd) < 3 || cmd[0] != "/usr/bin/respawnd" || cmd[1] != "exec" || sep < 0 || sep == len(cmd)-1 {
		t.Fatalf("command %q, want /usr/bin/respawnd exec [flags] -- PROGRAM [ARGS]", cmd)
	}
	var memMax string
	for _, f := range cmd[2:sep] {
		if v, ok := strings.CutPrefix(f, "--memory.max="); ok {
			memMax = v
		}
		if !strings.HasPrefix(f, "--") || !strings.Contains(f, "=") {
			t.Errorf("flag %q: write respawnd's flags as --name=value", f)
		}
	}
	if memMax == "" {
		t.Fatal("no --memory.max")
	}
	// respawnd exec serves metrics only when asked for.
	if !slices.Contains(cmd[2:sep], "--web.listen-address=:"+strconv.Itoa(int(port))) {
		t.Errorf("command %q: respawnd exec needs --web.listen-address=:%d to serve metrics", cmd, port)
	}
	// kingpin's byte sizes are IEC for MiB and GiB; Kubernetes spells them Mi and Gi.
	q, err := resource.ParseQuantity(strings.TrimSuffix(strings.TrimSuffix(memMax, "B"), "i") + "i")
	if err != nil {
		t.Fatalf("--memory.max=%s: %v", memMax, err)
	}
	lim := c.Resources.Limits[corev1.ResourceMemory]
	if lim.IsZero() || q.Cmp(lim) >= 0 {
		t.Errorf("--memory.max=%s must be below the container's memory limit %s, so that the program is OOM-killed before the container", memMax, lim.String())
	}
	if p, ok := podPort(&pod.Spec, "metrics"); !ok || p != port {
		t.Errorf("metrics port %d, want %d (web-listen-address)", p, port)
	}
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("PodMonitor selector does not match the pods: %v", err)
	}
	if pm.Namespace != app.Namespace {
		t.Errorf("PodMonitor in %s, the app in %s", pm.Namespace, app.Namespace)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("PodMonitor: %d endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Port == nil || *ep.Port != "metrics" {
		t.Errorf("PodMonitor: port %v, want metrics", ep.Port)
	}
	job := ""
	for _, r := range ep.RelabelConfigs {
		if r.TargetLabel == "job" && r.Replacement != nil {
			job = *r.Replacement
		}
	}
	if job != "respawnd-exec" {
		t.Errorf("PodMonitor: job %q; RespawndDown and the dashboard expect respawnd-exec", job)
	}
	if tg := pod.Spec.TerminationGracePeriodSeconds; tg == nil {
		t.Error("no terminationGracePeriodSeconds")
	} else {
		for _, f := range cmd[2:sep] {
			if v, ok := strings.CutPrefix(f, "--stop.timeout="); ok && !strings.HasSuffix(v, "s") {
				t.Errorf("--stop.timeout=%s: give it in seconds", v)
			} else if ok {
				var s int64
				if _, err := fmt.Sscanf(v, "%ds", &s); err != nil || s >= *tg {
					t.Errorf("--stop.timeout=%s must be shorter than terminationGracePeriodSeconds %d", v, *tg)
				}
			}
		}
	}
}
