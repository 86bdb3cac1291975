package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/runbookhq/runbook/runbook"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	k8sDir      = "kubernetes"
	serviceFile = "systemd/runbook@.service"
	timerFile   = "systemd/runbook@.timer"
	container   = "runbook"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeStrict decodes one YAML document into obj with the upstream types,
// refusing unknown and duplicate fields: a misspelt field would otherwise be
// dropped without a word by the API server too.
func decodeStrict(t *testing.T, path string, obj any) {
	t.Helper()
	b := read(t, path)
	if bytes.Contains(b, []byte("\n---")) || bytes.HasPrefix(b, []byte("---")) {
		t.Fatalf("%s: one object per file (a second document would not be checked)", path)
	}
	if err := yaml.UnmarshalStrict(b, obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type manifests struct {
	cronJob   *batchv1.CronJob
	pvc       *corev1.PersistentVolumeClaim
	configMap *corev1.ConfigMap
}

// loadManifests decodes every object the kustomization lists, each by its kind,
// and checks that the kustomization lists every manifest in the directory.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	decodeStrict(t, filepath.Join(k8sDir, "kustomization.yaml"), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(k.Resources, b) {
			t.Errorf("%s is not in kustomization.yaml's resources: it would not be applied", f)
		}
	}
	var m manifests
	for _, r := range k.Resources {
		path := filepath.Join(k8sDir, r)
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(read(t, path), &tm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
		case "batch/v1 CronJob":
			m.cronJob = new(batchv1.CronJob)
			decodeStrict(t, path, m.cronJob)
		case "v1 PersistentVolumeClaim":
			m.pvc = new(corev1.PersistentVolumeClaim)
			decodeStrict(t, path, m.pvc)
		case "v1 ConfigMap":
			m.configMap = new(corev1.ConfigMap)
			decodeStrict(t, path, m.configMap)
		default:
			t.Fatalf("%s: %s: teach this test the kind", path, gvk)
		}
	}
	if m.cronJob == nil || m.pvc == nil || m.configMap == nil {
		t.Fatal("kustomization.yaml must list a CronJob, a PersistentVolumeClaim and a ConfigMap")
	}
	return m
}

func runbookContainer(t *testing.T, cj *batchv1.CronJob) corev1.Container {
	t.Helper()
	for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
		if c.Name == container {
			return c
		}
	}
	t.Fatalf("the CronJob has no container %q", container)
	return corev1.Container{}
}

// flagValue is the value of --name in args (as "--name value" or "--name=value").
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// under says whether path is dir or inside it.
func under(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	loadManifests(t)
	// Keep k8s.io modules at one release: api and apimachinery move together.
	info, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build info")
	}
	versions := map[string]string{}
	for _, d := range info.Deps {
		if d.Path == "k8s.io/api" || d.Path == "k8s.io/apimachinery" {
			versions[d.Path] = d.Version
		}
	}
	if versions["k8s.io/api"] != versions["k8s.io/apimachinery"] {
		t.Errorf("k8s.io modules at different releases: %v", versions)
	}
}

func TestCronJobEssentials(t *testing.T) {
	m := loadManifests(t)
	cj := m.cronJob
	js := cj.Spec.JobTemplate.Spec
	pod := js.Template.Spec

	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("concurrencyPolicy = %q, want Forbid: the lock holds on one node only", cj.Spec.ConcurrencyPolicy)
	}
	if d := cj.Spec.StartingDeadlineSeconds; d == nil || *d <= 0 {
		t.Error("startingDeadlineSeconds must be set")
	}
	if b := js.BackoffLimit; b == nil || *b < 1 {
		t.Error("the Job's backoffLimit must be set and allow a retry")
	}
	if d := js.ActiveDeadlineSeconds; d == nil || *d <= 0 {
		t.Error("the Job's activeDeadlineSeconds must be set")
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q, want Never (podFailurePolicy requires it)", pod.RestartPolicy)
	}
	if p := js.PodReplacementPolicy; p == nil || *p != batchv1.Failed {
		t.Error("podReplacementPolicy must be Failed: a new pod only once the old one is gone")
	}

	c := runbookContainer(t, cj)
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("the pod's securityContext must set runAsNonRoot")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("the container has no securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("runAsNonRoot must be true")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem must be true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation must be false")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Error("capabilities must drop ALL")
	}

	// The command line.
	args := c.Args
	if len(args) < 2 || args[0] != "run" {
		t.Fatalf("args = %q, want run ...", args)
	}
	if !slices.Contains(args, "--resume=auto") {
		t.Error("args must have --resume=auto: a retried pod continues the run")
	}
	if v, ok := flagValue(args, "--output"); !ok || v != "json" {
		t.Error("args must have --output json")
	}
	stateDir, ok := flagValue(args, "--state-dir")
	if !ok {
		t.Fatal("args must have --state-dir")
	}
	metrics, ok := flagValue(args, "--metrics-file")
	if !ok {
		t.Fatal("args must have --metrics-file")
	}
	file := args[len(args)-1]

	// Volumes: the state dir on the PVC, the runbook from the ConfigMap.
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	var stateMount, runbookMount *corev1.VolumeMount
	for i, vm := range c.VolumeMounts {
		v := volumes[vm.Name]
		switch {
		case v.PersistentVolumeClaim != nil:
			if v.PersistentVolumeClaim.ClaimName != m.pvc.Name {
				t.Errorf("volume %s claims %q; the PVC manifest is %q", v.Name, v.PersistentVolumeClaim.ClaimName, m.pvc.Name)
			}
			stateMount = &c.VolumeMounts[i]
		case v.ConfigMap != nil:
			if v.ConfigMap.Name != m.configMap.Name {
				t.Errorf("volume %s is ConfigMap %q; the manifest is %q", v.Name, v.ConfigMap.Name, m.configMap.Name)
			}
			runbookMount = &c.VolumeMounts[i]
		}
	}
	if stateMount == nil || runbookMount == nil {
		t.Fatal("the container must mount the PVC and the ConfigMap")
	}
	if stateMount.ReadOnly {
		t.Error("the state volume must be writable")
	}
	// runbook refuses a state dir another user owns, and a volume's root is
	// root's: the state dir is a directory runbook makes inside the volume.
	if !under(stateDir, stateMount.MountPath) || stateDir == stateMount.MountPath {
		t.Errorf("--state-dir %s must be a directory inside the volume mounted at %s, not its root", stateDir, stateMount.MountPath)
	}
	if !under(metrics, stateMount.MountPath) {
		t.Errorf("--metrics-file %s is not on a writable volume (the root filesystem is read-only)", metrics)
	}
	// The journals are keyed by the runbook's real path, so it must not
	// change from pod to pod: the file itself by subPath, not the symlink of
	// a ConfigMap directory mount.
	if runbookMount.SubPath == "" || runbookMount.MountPath != file {
		t.Errorf("the runbook %s must be the ConfigMap key mounted by subPath at that path (mount: %+v)", file, *runbookMount)
	}
	text, ok := m.configMap.Data[runbookMount.SubPath]
	if !ok {
		t.Fatalf("the ConfigMap has no key %q", runbookMount.SubPath)
	}

	// The ConfigMap's runbook is the example the repository's tests load.
	example := string(read(t, filepath.Join("..", "examples", runbookMount.SubPath)))
	example = regexp.MustCompile(`(?m)^# yaml-language-server:.*\n`).ReplaceAllString(example, "")
	if text != example {
		t.Errorf("the ConfigMap's %s differs from examples/%s", runbookMount.SubPath, runbookMount.SubPath)
	}

	// Every variable the runbook must read from the environment is set, and
	// the secrets it names come from a Secret.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, ref := range regexp.MustCompile(`\benv\.([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(text, -1) {
		if _, ok := env[ref[1]]; !ok {
			t.Errorf("the runbook reads env.%s, which the container does not set (exit 78)", ref[1])
		}
	}
	var rb struct {
		Secrets []string `json:"secrets"`
	}
	if err := yaml.Unmarshal([]byte(text), &rb); err != nil {
		t.Fatal(err)
	}
	if len(rb.Secrets) == 0 {
		t.Error("the example runbook names no secrets: the check below would check nothing")
	}
	for _, s := range rb.Secrets {
		if e, ok := env[s]; !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("secret %s must come from a Secret (valueFrom.secretKeyRef)", s)
		}
	}
}

// ints returns the values as ints, sorted.
func ints(values []int32) []int {
	out := make([]int, len(values))
	for i, v := range values {
		out[i] = int(v)
	}
	slices.Sort(out)
	return out
}

func TestPodFailurePolicyFollowsExitCodes(t *testing.T) {
	cj := loadManifests(t).cronJob
	pfp := cj.Spec.JobTemplate.Spec.PodFailurePolicy
	if pfp == nil {
		t.Fatal("the Job has no podFailurePolicy")
	}
	byAction := map[batchv1.PodFailurePolicyAction][]int{}
	sawExitCodes := false
	for i, r := range pfp.Rules {
		switch {
		case r.OnPodConditions != nil && r.OnExitCodes != nil:
			t.Errorf("rule %d: onExitCodes and onPodConditions are exclusive", i)
		case len(r.OnPodConditions) > 0:
			// An eviction's SIGTERM exits 143 too: the condition must be
			// matched before any exit code is.
			if sawExitCodes {
				t.Errorf("rule %d (pod conditions) comes after an exit-code rule, which would match first", i)
			}
			for _, c := range r.OnPodConditions {
				if c.Type != corev1.DisruptionTarget || r.Action != batchv1.PodFailurePolicyActionIgnore {
					t.Errorf("rule %d: %s on %s: only Ignore on DisruptionTarget is expected", i, r.Action, c.Type)
				}
				if c.Status != "" && c.Status != corev1.ConditionTrue {
					t.Errorf("rule %d: condition status %q, want True", i, c.Status)
				}
			}
		case r.OnExitCodes != nil:
			sawExitCodes = true
			x := r.OnExitCodes
			if x.ContainerName == nil || *x.ContainerName != container {
				t.Errorf("rule %d: containerName must be %q", i, container)
			}
			if x.Operator != batchv1.PodFailurePolicyOnExitCodesOpIn {
				t.Errorf("rule %d: operator %s: use In, so a new exit code is never matched by accident", i, x.Operator)
			}
			// The API server's rules: ordered, no duplicates, no 0 for In,
			// 1 to 255 values.
			if len(x.Values) == 0 || len(x.Values) > 255 {
				t.Errorf("rule %d: %d values, want 1 to 255", i, len(x.Values))
			}
			for j, v := range x.Values {
				if v == 0 {
					t.Errorf("rule %d: 0 cannot be a value of In", i)
				}
				if j > 0 && x.Values[j-1] >= v {
					t.Errorf("rule %d: values must be ordered, without duplicates: %v", i, x.Values)
				}
			}
			byAction[r.Action] = append(byAction[r.Action], ints(x.Values)...)
		default:
			t.Errorf("rule %d has neither onExitCodes nor onPodConditions", i)
		}
	}
	if !slices.ContainsFunc(pfp.Rules, func(r batchv1.PodFailurePolicyRule) bool {
		return r.Action == batchv1.PodFailurePolicyActionIgnore && len(r.OnPodConditions) > 0
	}) {
		t.Error("no Ignore rule on DisruptionTarget: an evicted pod would count as a failure")
	}
	for a := range byAction {
		slices.Sort(byAction[a])
	}

	want := map[batchv1.PodFailurePolicyAction][]int{
		batchv1.PodFailurePolicyActionFailJob: runbook.ExitCodesAdvised(runbook.RetryCannotHelp),
		batchv1.PodFailurePolicyActionCount:   runbook.ExitCodesAdvised(runbook.RetryHelps),
	}
	for a, codes := range want {
		if !slices.Equal(byAction[a], codes) {
			t.Errorf("%s on exit codes %v; runbook/exitcodes.go advises %v", a, byAction[a], codes)
		}
	}
	for a, codes := range byAction {
		if _, ok := want[a]; !ok {
			t.Errorf("%s on exit codes %v: no exit code is advised so", a, codes)
		}
	}

	// Every code is handled by a rule or left to the default on purpose.
	inRules := map[int]batchv1.PodFailurePolicyAction{}
	for a, codes := range byAction {
		for _, c := range codes {
			if prev, ok := inRules[c]; ok {
				t.Errorf("exit code %d is in rules %s and %s", c, prev, a)
			}
			inRules[c] = a
		}
	}
	known := map[int]bool{}
	for _, e := range runbook.ExitCodes() {
		known[e.Code] = true
		_, ruled := inRules[e.Code]
		switch e.Advice {
		case runbook.Success, runbook.Resumable:
			// 0 is no failure; a signal is left to the default (it counts),
			// after the DisruptionTarget rule has taken evictions out.
			if ruled {
				t.Errorf("exit code %d (%s) is %v: it is left to the default, not to a rule", e.Code, e.Name, e.Advice)
			}
		case runbook.RetryHelps, runbook.RetryCannotHelp:
			if !ruled {
				t.Errorf("exit code %d (%s, %v) is in no rule of the podFailurePolicy", e.Code, e.Name, e.Advice)
			}
		default:
			t.Errorf("exit code %d (%s) has advice %v, which this test does not know: decide what the CronJob does with it", e.Code, e.Name, e.Advice)
		}
	}
	for c := range inRules {
		if !known[c] {
			t.Errorf("the podFailurePolicy names exit code %d, which runbook does not use", c)
		}
	}
}

// unit reads a systemd unit file: every key's values in order, line
// continuations joined, comments skipped.
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(read(t, path)))
	var line string
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if line == "" && (s == "" || strings.HasPrefix(s, "#") || strings.HasPrefix(s, ";") || strings.HasPrefix(s, "[")) {
			continue
		}
		if cont, ok := strings.CutSuffix(s, "\\"); ok {
			line += cont + " "
			continue
		}
		line += s
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", path, line)
		}
		out[strings.TrimSpace(k)] = append(out[strings.TrimSpace(k)], strings.TrimSpace(v))
		line = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// one is the single value of key; a key given twice is an error here.
func one(t *testing.T, u map[string][]string, key string) string {
	t.Helper()
	v := u[key]
	if len(v) != 1 {
		t.Errorf("%s: %d values %q, want one", key, len(v), v)
		return ""
	}
	return v[0]
}

func TestSystemdFollowsExitCodes(t *testing.T) {
	u := unit(t, serviceFile)
	if one(t, u, "Restart") != "on-failure" {
		t.Error("Restart must be on-failure")
	}
	var codes []int
	for _, v := range u["RestartPreventExitStatus"] {
		for f := range strings.FieldsSeq(v) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Errorf("RestartPreventExitStatus: %q is not an exit code", f)
				continue
			}
			codes = append(codes, n)
		}
	}
	slices.Sort(codes)
	if want := runbook.ExitCodesAdvised(runbook.RetryCannotHelp); !slices.Equal(codes, want) {
		t.Errorf("RestartPreventExitStatus = %v; runbook/exitcodes.go advises no retry for %v", codes, want)
	}
	// A code that forces a restart, or counts as success, would override
	// the table.
	for _, k := range []string{"RestartForceExitStatus", "SuccessExitStatus"} {
		if v, ok := u[k]; ok {
			t.Errorf("%s=%q: the restart decision belongs to the exit-code table", k, v)
		}
	}
}

func TestSystemdUnits(t *testing.T) {
	u := unit(t, serviceFile)
	for k, want := range map[string]string{
		"Type":           "oneshot",
		"StateDirectory": "runbook",
		"ProtectSystem":  "strict",
		"DynamicUser":    "yes",
	} {
		if got := one(t, u, k); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if one(t, u, "RestartSec") == "" {
		t.Error("RestartSec must give a retry time to settle")
	}
	if len(u["EnvironmentFile"]) == 0 {
		t.Error("credentials: EnvironmentFile= is missing")
	}
	args := strings.Fields(one(t, u, "ExecStart"))
	if len(args) < 3 || args[1] != "run" {
		t.Fatalf("ExecStart = %q, want runbook run ...", args)
	}
	if !slices.Contains(args, "--resume=auto") {
		t.Error("ExecStart must have --resume=auto: a restart continues the run")
	}
	if v, _ := flagValue(args, "--output"); v != "json" {
		t.Error("ExecStart must have --output json")
	}
	if v, _ := flagValue(args, "--state-dir"); v != "/var/lib/runbook" {
		t.Errorf("--state-dir %q, want /var/lib/runbook (StateDirectory=runbook)", v)
	}
	if v, _ := flagValue(args, "--metrics-file"); !under(v, "/var/lib/runbook") {
		t.Errorf("--metrics-file %q must be in the state directory: ProtectSystem=strict makes the rest read-only", v)
	}

	timer := unit(t, timerFile)
	if one(t, timer, "Persistent") != "true" {
		t.Error("the timer must be Persistent=true: a run missed while the host was down runs at boot")
	}
	if one(t, timer, "OnCalendar") == "" {
		t.Error("the timer has no OnCalendar=")
	}
}

func TestDockerfile(t *testing.T) {
	text := string(read(t, "Dockerfile"))
	var froms []string
	var user, entrypoint string
	for _, l := range strings.Split(text, "\n") {
		switch f := strings.Fields(l); {
		case len(f) == 0:
		case f[0] == "FROM":
			froms = append(froms, strings.Join(f[1:], " "))
		case f[0] == "USER":
			user = f[1]
		case f[0] == "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[0], "golang:1.26 ") {
		t.Errorf("stages %q: want a golang:1.26 build stage and a final one", froms)
	}
	for _, s := range []string{"CGO_ENABLED=0", "-trimpath"} {
		if !strings.Contains(text, s) {
			t.Errorf("the build does not use %s", s)
		}
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %q: want distroless static or scratch, no shell", final)
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if !strings.HasPrefix(entrypoint, `["`) {
		t.Errorf("ENTRYPOINT %s: want the exec form (there is no shell)", entrypoint)
	}
}

func TestOperationsDocExitCodes(t *testing.T) {
	doc := string(read(t, filepath.Join("..", "docs", "operations.md")))
	for _, e := range runbook.ExitCodes() {
		row := regexp.MustCompile(fmt.Sprintf(`(?m)^\| %d \|.*\|$`, e.Code)).FindString(doc)
		if row == "" {
			t.Errorf("docs/operations.md has no row for exit code %d (%s)", e.Code, e.Name)
			continue
		}
		if !strings.Contains(row, e.Advice.String()) {
			t.Errorf("docs/operations.md's row for %d does not say %q: %s", e.Code, e.Advice, row)
		}
	}
}
