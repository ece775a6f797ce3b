package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
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
	case "rbac.authorization.k8s.io/v1 Role":
		return &rbacv1.Role{}, nil
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return &rbacv1.RoleBinding{}, nil
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, nil
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
		{"daemonset.yaml", "priorityClassName:", "priorityClass:"},
		{"daemonset.yaml", "nodeSelector:", "nodeSelectors:"},
		{"daemonset.yaml", "resourceFieldRef:", "resourceFieldReference:"},
		{"daemonset.yaml", `divisor: "1"`, "divisor: one"},
		{"rbac.yaml", "verbs:", "verb:"},
		{"rbac.yaml", "roleRef:", "roleref:"},
		{"rbac.yaml", "subjects:", "subject:"},
		{"networkpolicy.yaml", "policyTypes:", "policyType:"},
		{"networkpolicy.yaml", "namespaceSelector:", "namespaceSelectors:"},
		{"networkpolicy.yaml", "port: 8571", "port: [8571]"},
		{"sidecar-example.yaml", "separator: /", "seperator: /"},
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
	for _, f := range cmd[2:sep] {
		// A restricted pod's cgroup fs is read-only: respawnd cannot make
		// the program cgroup that --memory.max asks for.
		if strings.HasPrefix(f, "--memory.") {
			t.Errorf("flag %q: a restricted pod cannot create the program's memory cgroup", f)
		}
		if !strings.HasPrefix(f, "--") || !strings.Contains(f, "=") {
			t.Errorf("flag %q: write respawnd's flags as --name=value", f)
		}
	}
	// respawnd exec serves metrics only when asked for.
	if !slices.Contains(cmd[2:sep], "--web.listen-address=:"+strconv.Itoa(int(port))) {
		t.Errorf("command %q: respawnd exec needs --web.listen-address=:%d to serve metrics", cmd, port)
	}
	// The container's limit is the one enforced; respawnd reads its
	// memory.events.
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.IsZero() {
		t.Errorf("no memory limit on the container")
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

// TestNodeAgentScheduling checks how the DaemonSet is scheduled and
// protected: the node-critical priority class (oom_score_adj -997 whatever
// the QoS class), Linux nodes only, memory request equal to its limit, a
// CPU request but no CPU limit (a throttled respawnd misses kernel log
// records in an OOM storm), GOMEMLIMIT from the container's own memory
// limit, and an image pinned to a released version.
func TestNodeAgentScheduling(t *testing.T) {
	m := manifests(t)
	ds := find[*appsv1.DaemonSet](t, m, "daemonset.yaml")
	spec := &ds.Spec.Template.Spec
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("DaemonSet: priorityClassName %q, want system-node-critical", spec.PriorityClassName)
	}
	if len(spec.NodeSelector) != 1 || spec.NodeSelector[corev1.LabelOSStable] != "linux" {
		t.Errorf("DaemonSet: nodeSelector %v, want exactly %s: linux", spec.NodeSelector, corev1.LabelOSStable)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("DaemonSet: %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
	if req.IsZero() || req.Cmp(lim) != 0 {
		t.Errorf("DaemonSet: memory request %s and limit %s must be equal", req.String(), lim.String())
	}
	if cpu := c.Resources.Requests[corev1.ResourceCPU]; cpu.IsZero() {
		t.Error("DaemonSet: want a CPU request")
	}
	if cpu, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		t.Errorf("DaemonSet: CPU limit %s: a throttled respawnd falls behind the kernel log; set none", cpu.String())
	}
	if len(c.Resources.Limits) != 1 {
		t.Errorf("DaemonSet: limits %v, want memory only", c.Resources.Limits)
	}

	var gomemlimit *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "GOMEMLIMIT" {
			gomemlimit = &c.Env[i]
		}
	}
	switch {
	case gomemlimit == nil:
		t.Error("DaemonSet: no GOMEMLIMIT")
	case gomemlimit.Value != "" || gomemlimit.ValueFrom == nil || gomemlimit.ValueFrom.ResourceFieldRef == nil:
		t.Errorf("DaemonSet: GOMEMLIMIT %+v, want it from the downward API's resourceFieldRef", gomemlimit)
	default:
		ref := gomemlimit.ValueFrom.ResourceFieldRef
		if ref.Resource != "limits.memory" || ref.ContainerName != c.Name {
			t.Errorf("DaemonSet: GOMEMLIMIT from %s of container %q, want limits.memory of %q", ref.Resource, ref.ContainerName, c.Name)
		}
		// GOMEMLIMIT reads a bare number as bytes: the divisor must be 1
		// (or unset, which means 1), or 128Mi would become 128 bytes.
		if one := resource.MustParse("1"); !ref.Divisor.IsZero() && ref.Divisor.Cmp(one) != 0 {
			t.Errorf("DaemonSet: GOMEMLIMIT divisor %s, want 1 (bytes)", ref.Divisor.String())
		}
	}

	checkImageTag(t, "DaemonSet", c.Image)
	if c.ImagePullPolicy == corev1.PullAlways {
		t.Error("DaemonSet: a pinned tag needs no imagePullPolicy Always")
	}
	// The entrypoint example copies respawnd from the same release.
	for _, line := range strings.Split(string(readFile(t, filepath.Join(k8sDir, "sidecar-example.yaml"))), "\n") {
		if _, ref, ok := strings.Cut(line, "COPY --from="); ok {
			ref, _, _ = strings.Cut(ref, " ")
			checkImageTag(t, "sidecar-example.yaml", ref)
			if ref != c.Image {
				t.Errorf("sidecar-example.yaml copies from %s, the DaemonSet runs %s", ref, c.Image)
			}
		}
	}
}

// checkImageTag fails unless ref names respawnd's image by a version tag.
func checkImageTag(t *testing.T, where, ref string) {
	t.Helper()
	if problem := imageTagProblem(ref); problem != "" {
		t.Errorf("%s: %s", where, problem)
	}
}

// imageTagProblem says what is wrong with an image reference of respawnd,
// or returns "" when it is pinned to a version tag (vMAJOR.MINOR.PATCH, the
// form git describe --tags gives a release).
func imageTagProblem(ref string) string {
	repo, tag, ok := strings.Cut(ref, ":")
	if !ok || repo != "ghcr.io/respawnd/respawnd" {
		return fmt.Sprintf("image %q, want ghcr.io/respawnd/respawnd:vX.Y.Z", ref)
	}
	if !versionTag.MatchString(tag) {
		return fmt.Sprintf("image tag %q is not a pinned version (vX.Y.Z); :latest and moving tags run a different build on each node", tag)
	}
	return ""
}

var versionTag = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

func TestImageTagCheckRefusesMovingTags(t *testing.T) {
	for _, ref := range []string{"ghcr.io/respawnd/respawnd:latest", "ghcr.io/respawnd/respawnd", "ghcr.io/respawnd/respawnd:main", "ghcr.io/respawnd/respawnd:v1", "ghcr.io/other/respawnd:v0.1.0", "ghcr.io/respawnd/respawnd:v0.1.0-latest"} {
		if imageTagProblem(ref) == "" {
			t.Errorf("%s: accepted", ref)
		}
	}
	if p := imageTagProblem("ghcr.io/respawnd/respawnd:v0.1.0"); p != "" {
		t.Errorf("v0.1.0 refused: %s", p)
	}
}

// TestPrometheusCanDiscover checks the Role that lets kube-prometheus's
// Prometheus (service account prometheus-k8s in monitoring) find respawnd's
// targets in respawnd's namespace, read-only.
func TestPrometheusCanDiscover(t *testing.T) {
	m := manifests(t)
	role := find[*rbacv1.Role](t, m, "rbac.yaml")
	rb := find[*rbacv1.RoleBinding](t, m, "rbac.yaml")
	svc := find[*corev1.Service](t, m, "service.yaml")
	sm := find[*monitoringv1.ServiceMonitor](t, m, "servicemonitor.yaml")
	if role.Namespace != svc.Namespace || rb.Namespace != svc.Namespace || sm.Namespace != svc.Namespace {
		t.Errorf("Role in %q, RoleBinding in %q, ServiceMonitor in %q: want all in the Service's namespace %q", role.Namespace, rb.Namespace, sm.Namespace, svc.Namespace)
	}
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) {
		t.Errorf("RoleBinding: roleRef %+v, want Role %s", rb.RoleRef, role.Name)
	}
	wantSubject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "prometheus-k8s", Namespace: "monitoring"}
	if len(rb.Subjects) != 1 || rb.Subjects[0] != wantSubject {
		t.Errorf("RoleBinding: subjects %+v, want exactly %+v", rb.Subjects, wantSubject)
	}
	allowed := func(group, res, verb string) bool {
		for _, r := range role.Rules {
			if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, verb) && len(r.ResourceNames) == 0 {
				return true
			}
		}
		return false
	}
	for _, gr := range [][2]string{{"", "services"}, {"", "endpoints"}, {"", "pods"}, {"discovery.k8s.io", "endpointslices"}} {
		for _, verb := range []string{"get", "list", "watch"} {
			if !allowed(gr[0], gr[1], verb) {
				t.Errorf("Role: Prometheus may not %s %s in group %q", verb, gr[1], gr[0])
			}
		}
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if !slices.Contains([]string{"get", "list", "watch"}, v) {
				t.Errorf("Role: verb %q; Prometheus only reads", v)
			}
		}
		for _, x := range slices.Concat(r.APIGroups, r.Resources, r.Verbs) {
			if x == "*" {
				t.Errorf("Role: wildcard in %+v", r)
			}
		}
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "configmaps") {
			t.Errorf("Role: %v: Prometheus needs no secrets or configmaps here", r.Resources)
		}
	}
	// The release label kube-prometheus-stack selects by is documented
	// where it is set, and the kustomization's commented block sets it on
	// metadata only.
	if b := readFile(t, filepath.Join(k8sDir, "servicemonitor.yaml")); !bytes.Contains(b, []byte("# release: ")) {
		t.Error("servicemonitor.yaml: the release label for kube-prometheus-stack is not shown")
	}
	k := string(readFile(t, filepath.Join(k8sDir, "kustomization.yaml")))
	for _, want := range []string{"# labels:", "#       release: ", "#     includeSelectors: false", "#     includeTemplates: false"} {
		if !strings.Contains(k, want+"\n") && !strings.Contains(k, want) {
			t.Errorf("kustomization.yaml: no %q in the commented release label", want)
		}
	}
}

// TestNetworkPolicy checks that only Prometheus in the monitoring namespace
// may reach the node agent, on its metrics port only.
func TestNetworkPolicy(t *testing.T) {
	m := manifests(t)
	port := int32(listenPort(t))
	np := find[*networkingv1.NetworkPolicy](t, m, "networkpolicy.yaml")
	ds := find[*appsv1.DaemonSet](t, m, "daemonset.yaml")
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("NetworkPolicy does not select the DaemonSet's pods: %v", err)
	}
	if ds.Spec.Template.Spec.HostNetwork {
		t.Error("DaemonSet on the host network: a NetworkPolicy does not apply to it")
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("NetworkPolicy: policyTypes %v, want [Ingress]", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("NetworkPolicy: %d ingress rules, want 1", len(np.Spec.Ingress))
	}
	rule := np.Spec.Ingress[0]
	if len(rule.Ports) != 1 || rule.Ports[0].Port == nil || rule.Ports[0].Port.IntValue() != int(port) ||
		rule.Ports[0].Protocol == nil || *rule.Ports[0].Protocol != corev1.ProtocolTCP || rule.Ports[0].EndPort != nil {
		t.Errorf("NetworkPolicy: ports %+v, want exactly TCP %d", rule.Ports, port)
	}
	if len(rule.From) != 1 {
		t.Fatalf("NetworkPolicy: %d peers, want 1 (Prometheus in monitoring)", len(rule.From))
	}
	peer := rule.From[0]
	if peer.IPBlock != nil || peer.NamespaceSelector == nil || peer.PodSelector == nil {
		t.Fatalf("NetworkPolicy: peer %+v, want a namespace selector and a pod selector together", peer)
	}
	nsSel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
	if err != nil {
		t.Fatal(err)
	}
	podSel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ns, pod map[string]string
		want    bool
	}{
		{map[string]string{"kubernetes.io/metadata.name": "monitoring"}, map[string]string{"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": "k8s"}, true},
		{map[string]string{"kubernetes.io/metadata.name": "monitoring"}, map[string]string{"app.kubernetes.io/name": "grafana"}, false},
		{map[string]string{"kubernetes.io/metadata.name": "default"}, map[string]string{"app.kubernetes.io/name": "prometheus"}, false},
		{map[string]string{"kubernetes.io/metadata.name": "respawnd"}, map[string]string{}, false},
	} {
		if got := nsSel.Matches(labels.Set(tc.ns)) && podSel.Matches(labels.Set(tc.pod)); got != tc.want {
			t.Errorf("NetworkPolicy: a pod %v in namespace %v allowed = %v, want %v", tc.pod, tc.ns, got, tc.want)
		}
	}
}

// TestInstanceLabels checks that instance names the node for the node agent
// and namespace/pod for an exec entrypoint, never the pod's address.
func TestInstanceLabels(t *testing.T) {
	m := manifests(t)
	sm := find[*monitoringv1.ServiceMonitor](t, m, "servicemonitor.yaml")
	pm := find[*monitoringv1.PodMonitor](t, m, "sidecar-example.yaml")
	instance := func(rcs []monitoringv1.RelabelConfig) []monitoringv1.RelabelConfig {
		var out []monitoringv1.RelabelConfig
		for _, r := range rcs {
			if r.TargetLabel == "instance" {
				out = append(out, r)
			}
		}
		return out
	}
	replace := func(r monitoringv1.RelabelConfig) bool {
		return r.Action == "" || strings.EqualFold(r.Action, "replace")
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor: %d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	rs := instance(sm.Spec.Endpoints[0].RelabelConfigs)
	if len(rs) != 1 || !replace(rs[0]) || !slices.Equal(rs[0].SourceLabels, []monitoringv1.LabelName{"__meta_kubernetes_pod_node_name"}) ||
		(rs[0].Regex != "" && rs[0].Regex != "(.*)") || (rs[0].Replacement != nil && *rs[0].Replacement != "$1") {
		t.Errorf("ServiceMonitor: instance relabelling %+v, want the node name", rs)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("PodMonitor: %d endpoints, want 1", len(pm.Spec.PodMetricsEndpoints))
	}
	rs = instance(pm.Spec.PodMetricsEndpoints[0].RelabelConfigs)
	if len(rs) != 1 || !replace(rs[0]) || !slices.Equal(rs[0].SourceLabels, []monitoringv1.LabelName{"__meta_kubernetes_namespace", "__meta_kubernetes_pod_name"}) ||
		rs[0].Separator == nil || *rs[0].Separator != "/" ||
		(rs[0].Regex != "" && rs[0].Regex != "(.*)") || (rs[0].Replacement != nil && *rs[0].Replacement != "$1") {
		t.Errorf("PodMonitor: instance relabelling %+v, want namespace/pod", rs)
	}
}
