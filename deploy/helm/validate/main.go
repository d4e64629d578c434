// Command validate checks rendered Kubernetes manifests the way an API server would read them, without a cluster.
//
//	validate FILE...        (a FILE of "-" is standard input)
//
// Every YAML document is decoded into the Go type of its apiVersion and kind (k8s.io/api, and the Prometheus
// Operator's for ServiceMonitor) with the API server's strict decoder: an unknown kind, an unknown or misspelt
// field (case included), a duplicate field or a value of the wrong type is an error. Then the objects are checked
// against each other, for what a typo in a chart breaks without any field being wrong: a workload's selector that
// does not select its own pods, a probe or Service aimed at a port no container names, a mount of no volume, a
// volume of a claim these manifests do not make, a Service, PodDisruptionBudget or ServiceMonitor that selects
// nothing, an autoscaler of nothing.
//
// It prints one line per problem and exits 1 when there is any, 2 when a file cannot be read.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The API groups a chart may render. A kind outside them is refused: it could not be checked.
var schemeBuilders = []func(*runtime.Scheme) error{
	corev1.AddToScheme,
	appsv1.AddToScheme,
	batchv1.AddToScheme,
	policyv1.AddToScheme,
	autoscalingv1.AddToScheme,
	autoscalingv2.AddToScheme,
	networkingv1.AddToScheme,
	rbacv1.AddToScheme,
	monitoringv1.AddToScheme,
}

// object is one decoded document and where it came from.
type object struct {
	origin string
	obj    runtime.Object
	kind   string
	name   string
}

func (o object) String() string { return fmt.Sprintf("%s: %s/%s", o.origin, o.kind, o.name) }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate FILE... (- for standard input)")
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	for _, add := range schemeBuilders {
		utilruntime.Must(add(scheme))
	}
	decoder := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
		json.SerializerOptions{Yaml: true, Strict: true})

	var objects []object
	var problems []string
	for _, path := range os.Args[1:] {
		decoded, refused, err := decodeFile(decoder, path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "validate: %s: %v\n", path, err)
			os.Exit(2)
		}
		objects = append(objects, decoded...)
		problems = append(problems, refused...)
	}
	problems = append(problems, crossCheck(objects)...)
	for _, problem := range problems {
		fmt.Println(problem)
	}
	if len(problems) > 0 {
		fmt.Printf("validate: %d problem(s) in %d object(s)\n", len(problems), len(objects))
		os.Exit(1)
	}
	fmt.Printf("validate: %d object(s) ok: %s\n", len(objects), kindCounts(objects))
}

func decodeFile(decoder runtime.Decoder, path string) ([]object, []string, error) {
	var input io.Reader = os.Stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		defer file.Close()
		input = file
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(input))
	var objects []object
	var problems []string
	for index := 1; ; index++ {
		document, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objects, problems, nil
		}
		if err != nil {
			return nil, nil, err
		}
		origin := fmt.Sprintf("%s#%d", path, index)
		if isEmpty(document) {
			continue
		}
		obj, _, err := decoder.Decode(document, nil, nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", origin, err))
			continue
		}
		accessor, err := meta.Accessor(obj)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: no metadata: %v", origin, err))
			continue
		}
		decoded := object{origin: origin, obj: obj, kind: obj.GetObjectKind().GroupVersionKind().Kind,
			name: accessor.GetName()}
		if decoded.name == "" {
			problems = append(problems, fmt.Sprintf("%s: %s without metadata.name", origin, decoded.kind))
			continue
		}
		objects = append(objects, decoded)
	}
}

// isEmpty is true for a document of comments and blank lines only, as Helm leaves for a template that renders nothing.
func isEmpty(document []byte) bool {
	var value any
	return yaml.Unmarshal(bytes.TrimSpace(document), &value) == nil && value == nil
}

func kindCounts(objects []object) string {
	counts := map[string]int{}
	for _, o := range objects {
		counts[o.kind]++
	}
	kinds := make([]string, 0, len(counts))
	for kind, count := range counts {
		kinds = append(kinds, fmt.Sprintf("%s %d", kind, count))
	}
	sort.Strings(kinds)
	return strings.Join(kinds, ", ")
}

// podTemplate is a workload's pod template, with the volume names its claim templates add.
type podTemplate struct {
	owner  object
	labels labels.Set
	spec   corev1.PodSpec
	claims []string
}

func crossCheck(objects []object) []string {
	var problems []string
	report := func(o object, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	seen := map[string]object{}
	var templates []podTemplate
	services := map[string]*corev1.Service{}
	claims := map[string]bool{}
	for _, o := range objects {
		key := o.kind + "/" + o.name
		if first, dup := seen[key]; dup {
			report(o, "also defined at %s", first.origin)
		}
		seen[key] = o
		switch typed := o.obj.(type) {
		case *appsv1.Deployment:
			templates = append(templates, workload(o, typed.Spec.Selector, typed.Spec.Template, nil, report))
		case *appsv1.StatefulSet:
			var claims []string
			for _, claim := range typed.Spec.VolumeClaimTemplates {
				claims = append(claims, claim.Name)
			}
			templates = append(templates, workload(o, typed.Spec.Selector, typed.Spec.Template, claims, report))
		case *appsv1.DaemonSet:
			templates = append(templates, workload(o, typed.Spec.Selector, typed.Spec.Template, nil, report))
		case *corev1.Service:
			services[o.name] = typed
		case *corev1.PersistentVolumeClaim:
			claims[o.name] = true
		}
	}
	for _, t := range templates {
		checkPodSpec(t, claims, report)
	}
	for _, o := range objects {
		switch typed := o.obj.(type) {
		case *corev1.Service:
			checkService(o, typed, templates, report)
		case *appsv1.StatefulSet:
			governing, found := services[typed.Spec.ServiceName]
			if !found || governing.Spec.ClusterIP != corev1.ClusterIPNone {
				report(o, "serviceName %q is not a headless Service of these manifests", typed.Spec.ServiceName)
			}
		case *policyv1.PodDisruptionBudget:
			if !selectsAny(o, typed.Spec.Selector, templates, report) {
				report(o, "selects no pod of these manifests")
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			target := typed.Spec.ScaleTargetRef
			if _, found := seen[target.Kind+"/"+target.Name]; !found {
				report(o, "scales %s/%s, which these manifests do not define", target.Kind, target.Name)
			}
			if typed.Spec.MinReplicas != nil && *typed.Spec.MinReplicas > typed.Spec.MaxReplicas {
				report(o, "minReplicas %d above maxReplicas %d", *typed.Spec.MinReplicas, typed.Spec.MaxReplicas)
			}
		case *monitoringv1.ServiceMonitor:
			checkServiceMonitor(o, typed, objects, report)
		}
	}
	return problems
}

func workload(o object, selector *metav1.LabelSelector, template corev1.PodTemplateSpec, claims []string,
	report func(object, string, ...any)) podTemplate {
	t := podTemplate{owner: o, labels: labels.Set(template.Labels), spec: template.Spec, claims: claims}
	if selector == nil {
		report(o, "no selector")
		return t
	}
	parsed, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		report(o, "selector: %v", err)
	} else if parsed.Empty() || !parsed.Matches(t.labels) {
		report(o, "selector %s does not select its own pod template's labels %v", parsed, template.Labels)
	}
	return t
}

func checkPodSpec(t podTemplate, claims map[string]bool, report func(object, string, ...any)) {
	volumes := map[string]bool{}
	for _, volume := range t.spec.Volumes {
		if volumes[volume.Name] {
			report(t.owner, "volume %q defined twice", volume.Name)
		}
		volumes[volume.Name] = true
		if claim := volume.PersistentVolumeClaim; claim != nil && !claims[claim.ClaimName] {
			report(t.owner, "volume %q: claim %q is not a PersistentVolumeClaim of these manifests", volume.Name,
				claim.ClaimName)
		}
	}
	for _, claim := range t.claims {
		volumes[claim] = true
	}
	for _, container := range append(append([]corev1.Container{}, t.spec.InitContainers...), t.spec.Containers...) {
		ports := map[string]bool{}
		for _, port := range container.Ports {
			ports[port.Name] = true
		}
		for _, mount := range container.VolumeMounts {
			if !volumes[mount.Name] {
				report(t.owner, "container %q mounts volume %q, which the pod does not have", container.Name, mount.Name)
			}
		}
		probes := map[string]*corev1.Probe{"liveness": container.LivenessProbe, "readiness": container.ReadinessProbe,
			"startup": container.StartupProbe}
		for name, probe := range probes {
			if probe == nil {
				continue
			}
			var port *string
			if probe.HTTPGet != nil && probe.HTTPGet.Port.StrVal != "" {
				port = &probe.HTTPGet.Port.StrVal
			} else if probe.TCPSocket != nil && probe.TCPSocket.Port.StrVal != "" {
				port = &probe.TCPSocket.Port.StrVal
			}
			if port != nil && !ports[*port] {
				report(t.owner, "container %q: %s probe on port %q, which the container does not name",
					container.Name, name, *port)
			}
		}
	}
}

func checkService(o object, service *corev1.Service, templates []podTemplate, report func(object, string, ...any)) {
	if len(service.Spec.Selector) == 0 {
		return // endpoints managed elsewhere
	}
	selector := labels.SelectorFromSet(service.Spec.Selector)
	var matched []podTemplate
	for _, t := range templates {
		if selector.Matches(t.labels) {
			matched = append(matched, t)
		}
	}
	if len(matched) == 0 {
		report(o, "selector %s selects no pod of these manifests", selector)
		return
	}
	for _, port := range service.Spec.Ports {
		name := port.TargetPort.StrVal
		if name == "" {
			continue
		}
		for _, t := range matched {
			if !namesPort(t.spec, name) {
				report(o, "targetPort %q is not a port name of the pods of %s", name, t.owner)
			}
		}
	}
}

func namesPort(spec corev1.PodSpec, name string) bool {
	for _, container := range spec.Containers {
		for _, port := range container.Ports {
			if port.Name == name {
				return true
			}
		}
	}
	return false
}

func selectsAny(o object, selector *metav1.LabelSelector, templates []podTemplate,
	report func(object, string, ...any)) bool {
	parsed, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		report(o, "selector: %v", err)
		return true
	}
	for _, t := range templates {
		if !parsed.Empty() && parsed.Matches(t.labels) {
			return true
		}
	}
	return false
}

func checkServiceMonitor(o object, monitor *monitoringv1.ServiceMonitor, objects []object,
	report func(object, string, ...any)) {
	selector, err := metav1.LabelSelectorAsSelector(&monitor.Spec.Selector)
	if err != nil {
		report(o, "selector: %v", err)
		return
	}
	var selected []*corev1.Service
	for _, candidate := range objects {
		if service, ok := candidate.obj.(*corev1.Service); ok && selector.Matches(labels.Set(service.Labels)) {
			selected = append(selected, service)
		}
	}
	if len(selected) == 0 {
		report(o, "selects no Service of these manifests")
	}
	for _, service := range selected {
		for _, endpoint := range monitor.Spec.Endpoints {
			found := false
			for _, port := range service.Spec.Ports {
				found = found || port.Name == endpoint.Port
			}
			if !found {
				report(o, "endpoint port %q is not a port name of Service %s", endpoint.Port, service.Name)
			}
		}
	}
}
