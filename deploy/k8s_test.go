package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// k8sDir holds the Kubernetes manifests (issue 11).
const k8sDir = "deploy/k8s"

// manifests is every object of deploy/k8s/*.yaml, decoded strictly into
// the k8s.io/api types: an unknown or misspelt field, a duplicate key or
// a kind this test does not know fails.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (%v)", k8sDir, err)
	}
	m := manifests{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{}, pdbs: map[string]*policyv1.PodDisruptionBudget{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSep.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s, document %d", filepath.Base(f), i+1)
			if err := m.add([]byte(doc)); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var out []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// add decodes one document into its kind's type, strictly.
func (m *manifests) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		return decodeInto(doc, m.deployments, func(d *appsv1.Deployment) string { return d.Name })
	case "v1 Service":
		return decodeInto(doc, m.services, func(s *corev1.Service) string { return s.Name })
	case "policy/v1 PodDisruptionBudget":
		return decodeInto(doc, m.pdbs, func(p *policyv1.PodDisruptionBudget) string { return p.Name })
	}
	return fmt.Errorf("kind %q of %q: not one this test checks", tm.Kind, tm.APIVersion)
}

// decodeInto decodes doc strictly (unknown fields and duplicate keys
// fail) and files it by name.
func decodeInto[T any](doc []byte, into map[string]*T, name func(*T) string) error {
	v := new(T)
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return err
	}
	n := name(v)
	if n == "" {
		return errors.New("no metadata.name")
	}
	if _, dup := into[n]; dup {
		return fmt.Errorf("%s defined twice", n)
	}
	into[n] = v
	return nil
}

// The strict decoding is strict: a misspelt field fails.
func TestK8sDecodingIsStrict(t *testing.T) {
	var m manifests
	m.deployments = map[string]*appsv1.Deployment{}
	err := m.add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n"))
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}

func container(t *testing.T, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("deployment %s has no container %s", d.Name, name)
	return nil
}

func envOf(c *corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

// matches reports whether selector selects labels.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// portNumber resolves a probe's or Service's target port against c's ports.
func portNumber(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s declares no port %s", c.Name, p.String())
	return 0
}

// checkContainer: readiness and liveness probes with one handler each, on
// a declared port (or the image's binary), and CPU and memory requests
// within limits.
func checkContainer(t *testing.T, c *corev1.Container, binary string) {
	t.Helper()
	for name, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if p == nil {
			t.Errorf("%s: no %s", c.Name, name)
			continue
		}
		h := p.ProbeHandler
		n := 0
		if h.HTTPGet != nil {
			n++
			portNumber(t, c, h.HTTPGet.Port)
			if !strings.HasPrefix(h.HTTPGet.Path, "/") {
				t.Errorf("%s: %s path %q", c.Name, name, h.HTTPGet.Path)
			}
		}
		if h.TCPSocket != nil {
			n++
			portNumber(t, c, h.TCPSocket.Port)
		}
		if h.Exec != nil {
			n++
			if len(h.Exec.Command) == 0 || h.Exec.Command[0] != binary {
				t.Errorf("%s: %s runs %v, want %s (the image has no shell)", c.Name, name, h.Exec.Command, binary)
			}
		}
		if h.GRPC != nil {
			n++
		}
		if n != 1 {
			t.Errorf("%s: %s has %d handlers, want 1", c.Name, name, n)
		}
		if p.PeriodSeconds <= 0 || p.TimeoutSeconds <= 0 || p.TimeoutSeconds >= p.PeriodSeconds+1 {
			t.Errorf("%s: %s period %d, timeout %d", c.Name, name, p.PeriodSeconds, p.TimeoutSeconds)
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		limit, hasLimit := c.Resources.Limits[r]
		req, hasReq := c.Resources.Requests[r]
		switch {
		case !hasLimit || limit.IsZero():
			t.Errorf("%s: no %s limit", c.Name, r)
		case !hasReq || req.IsZero():
			t.Errorf("%s: no %s request", c.Name, r)
		case req.Cmp(limit) > 0:
			t.Errorf("%s: %s request %s above its limit %s", c.Name, r, req.String(), limit.String())
		}
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("%s: no preStop sleep (endpoints must drop it before SIGTERM)", c.Name)
	}
}

// checkDeployment: its selector picks its pods, and a PodDisruptionBudget
// guards them while leaving room for a node drain.
func checkDeployment(t *testing.T, m manifests, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Labels
	if d.Spec.Selector == nil || !matches(d.Spec.Selector.MatchLabels, pod) {
		t.Errorf("deployment %s: selector %v does not select its pods %v", d.Name, d.Spec.Selector, pod)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	var pdb *policyv1.PodDisruptionBudget
	for _, p := range m.pdbs {
		if p.Spec.Selector != nil && matches(p.Spec.Selector.MatchLabels, pod) {
			pdb = p
		}
	}
	switch {
	case pdb == nil:
		t.Errorf("deployment %s: no PodDisruptionBudget selects its pods", d.Name)
	case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= int(replicas):
		t.Errorf("PodDisruptionBudget %s: minAvailable %s of %d replicas blocks every drain", pdb.Name, pdb.Spec.MinAvailable, replicas)
	case pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil:
		t.Errorf("PodDisruptionBudget %s: neither minAvailable nor maxUnavailable", pdb.Name)
	}
	grace := int64(30)
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil &&
			c.Lifecycle.PreStop.Sleep.Seconds+10 > grace {
			t.Errorf("deployment %s: terminationGracePeriodSeconds %d leaves under 10 s after the preStop sleep", d.Name, grace)
		}
	}
}

// Issue 11: deploy/k8s/ runs standalone reference workers behind a headless
// Service and the balancer in front of them through that Service's name,
// with probes, limits and disruption budgets; every variable set is one
// the binary reads.
func TestK8sManifests(t *testing.T) {
	m := loadManifests(t)
	workers, balancer := m.deployments["procbal-worker"], m.deployments["procbal-balancer"]
	if workers == nil || balancer == nil {
		t.Fatalf("deployments %v, want procbal-worker and procbal-balancer", keys(m.deployments))
	}
	wc, bc := container(t, workers, "worker"), container(t, balancer, "balancer")
	checkContainer(t, wc, "/usr/local/bin/worker")
	checkContainer(t, bc, "/usr/local/bin/balancer")
	checkDeployment(t, m, workers)
	checkDeployment(t, m, balancer)
	for c, image := range map[*corev1.Container]string{wc: "procbal/worker:", bc: "procbal/balancer:"} {
		if !strings.HasPrefix(c.Image, image) {
			t.Errorf("%s: image %q, want the one make docker-build tags, %s<version>", c.Name, c.Image, image)
		}
	}
	// The binaries are where the probes and the images put them.
	for _, f := range []string{"Dockerfile.balancer", "Dockerfile.worker"} {
		if !strings.Contains(readFile(t, f), "/usr/local/bin/") {
			t.Errorf("%s does not install into /usr/local/bin/", f)
		}
	}

	// Every variable set is read by the binary it is set for.
	if bad := unread(envNames(bc), balancerHandable(t)); len(bad) > 0 {
		t.Errorf("the balancer's manifest sets %v, which it does not read", bad)
	}
	if bad := unread(envNames(wc), workerVars(t)); len(bad) > 0 {
		t.Errorf("the workers' manifest sets %v, which they do not read", bad)
	}

	// The workers: standalone on WORKER_ADDR, the port their probes and
	// the headless Service use.
	wenv := envOf(wc)
	_, addrPort, err := net.SplitHostPort(wenv["WORKER_ADDR"])
	if err != nil {
		t.Fatalf("workers: WORKER_ADDR %q: %v", wenv["WORKER_ADDR"], err)
	}
	if p := strconv.Itoa(int(portNumber(t, wc, wc.ReadinessProbe.HTTPGet.Port))); p != addrPort {
		t.Errorf("workers: probed on %s, listening on %s", p, addrPort)
	}
	bad := slices.ContainsFunc(wc.Env, func(e corev1.EnvVar) bool {
		return e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && (e.ValueFrom.SecretKeyRef.Optional == nil || !*e.ValueFrom.SecretKeyRef.Optional)
	})
	if bad {
		t.Error("workers: a required secret would keep them from starting before it exists; make it optional")
	}

	// The balancer: no local worker, UPSTREAMS the headless Service's name
	// and port.
	benv := envOf(bc)
	if benv["MAX_WORKERS"] != "0" {
		t.Errorf("balancer: MAX_WORKERS %q, want 0 (it spawns no worker)", benv["MAX_WORKERS"])
	}
	upstreams := strings.Split(benv["UPSTREAMS"], ",")
	if len(upstreams) != 1 {
		t.Fatalf("balancer: UPSTREAMS %q, want the headless Service's name", benv["UPSTREAMS"])
	}
	name, port, err := net.SplitHostPort(upstreams[0])
	if err != nil {
		t.Fatalf("balancer: UPSTREAMS %q: %v", upstreams[0], err)
	}
	svc := m.services[strings.Split(name, ".")[0]]
	if svc == nil {
		t.Fatalf("balancer: UPSTREAMS names %s, which no Service of %s is", name, k8sDir)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s: clusterIP %q, want None (headless: its name answers every pod)", svc.Name, svc.Spec.ClusterIP)
	}
	if svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s publishes pods that are not ready", svc.Name)
	}
	if !matches(svc.Spec.Selector, workers.Spec.Template.Labels) {
		t.Errorf("Service %s selects %v, not the workers' pods %v", svc.Name, svc.Spec.Selector, workers.Spec.Template.Labels)
	}
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if strconv.Itoa(int(svc.Spec.Ports[i].Port)) == port {
			svcPort = &svc.Spec.Ports[i]
		}
	}
	switch {
	case svcPort == nil:
		t.Errorf("balancer: UPSTREAMS port %s is not a port of Service %s", port, svc.Name)
	case strconv.Itoa(int(portNumber(t, wc, svcPort.TargetPort))) != port:
		// A headless Service's DNS gives pod addresses: the port in UPSTREAMS
		// is the pods' own.
		t.Errorf("balancer: UPSTREAMS port %s is not the workers' port %s", port, svcPort.TargetPort.String())
	}
	if host, _, _ := net.SplitHostPort(benv["ADMIN_ADDR"]); host != "127.0.0.1" && benv["ADMIN_TOKEN"] == "" &&
		!slices.ContainsFunc(bc.Env, func(e corev1.EnvVar) bool { return e.Name == "ADMIN_TOKEN" && e.ValueFrom != nil }) {
		t.Errorf("balancer: ADMIN_ADDR %q is not loopback and no ADMIN_TOKEN is set", benv["ADMIN_ADDR"])
	}
	if _, p, err := net.SplitHostPort(benv["LISTEN_ADDR"]); err != nil || p != strconv.Itoa(int(portNumber(t, bc, intstr.FromString("http")))) {
		t.Errorf("balancer: LISTEN_ADDR %q is not its http port", benv["LISTEN_ADDR"])
	}
	front := m.services["procbal-balancer"]
	if front == nil || !matches(front.Spec.Selector, balancer.Spec.Template.Labels) {
		t.Errorf("no Service selects the balancer's pods")
	}
	if !bytes.Contains([]byte(readFile(t, "README.md")), []byte(k8sDir)) {
		t.Errorf("README.md does not mention %s", k8sDir)
	}
}

func envNames(c *corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}

func keys[T any](m map[string]T) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
