/*
Copyright 2026 The Custos Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package webhook

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The pod guard's checks that an agent pod cannot reach its node or gain
// privileges: the restricted Pod Security Standard, stricter where an agent
// needs no exception.

// checkPodSecurity: no way to the node's namespaces or filesystem, no
// privileges, and the ServiceAccount token only as a lease Custos issues:
// the restricted Pod Security Standard in full (volume types, SELinux,
// AppArmor, seccomp, sysctls, capabilities, ...), stricter where an agent
// needs no exception.
func checkPodSecurity(spec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	const noToken = "agent pods get credentials as leases Custos issues, never the ServiceAccount's token"
	switch t := spec.AutomountServiceAccountToken; {
	case t == nil:
		// Unset defers to the ServiceAccount's own setting, which the guard
		// would have to read; an explicit false holds whatever it says.
		errs = append(errs, field.Required(podSpecPath.Child("automountServiceAccountToken"), "must be set to false: "+noToken))
	case *t:
		errs = append(errs, field.Forbidden(podSpecPath.Child("automountServiceAccountToken"), "must be false: "+noToken))
	}
	for _, host := range []struct {
		name string
		on   bool
	}{{"hostNetwork", spec.HostNetwork}, {"hostPID", spec.HostPID}, {"hostIPC", spec.HostIPC}} {
		if host.on {
			errs = append(errs, field.Forbidden(podSpecPath.Child(host.name), "agent pods do not share the node's namespaces"))
		}
	}
	for i, vol := range spec.Volumes {
		if vol.HostPath != nil {
			errs = append(errs, field.Forbidden(podSpecPath.Child("volumes").Index(i).Child("hostPath"),
				"agent pods do not mount the node's filesystem"))
		}
	}
	errs = append(errs, checkVolumeTypes(spec)...)
	pod := spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	podSC := podSpecPath.Child("securityContext")
	if pod.RunAsNonRoot != nil && !*pod.RunAsNonRoot {
		errs = append(errs, field.Forbidden(podSC.Child("runAsNonRoot"), "agent pods run as a non-root user"))
	}
	if pod.RunAsUser != nil && *pod.RunAsUser == 0 {
		errs = append(errs, field.Forbidden(podSC.Child("runAsUser"), "agent pods do not run as root (UID 0)"))
	}
	if p := pod.SeccompProfile; p != nil && !seccompConfined(p) {
		errs = append(errs, field.Forbidden(podSC.Child("seccompProfile", "type"), "must be RuntimeDefault or Localhost"))
	}
	if w := pod.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
		errs = append(errs, field.Forbidden(podSC.Child("windowsOptions", "hostProcess"), "agent pods do not run as host processes"))
	}
	errs = append(errs, checkSELinux(podSC.Child("seLinuxOptions"), pod.SELinuxOptions)...)
	errs = append(errs, checkAppArmorProfile(podSC.Child("appArmorProfile"), pod.AppArmorProfile)...)
	errs = append(errs, checkSysctls(podSC.Child("sysctls"), pod.Sysctls)...)
	for _, c := range containersOf(spec) {
		errs = append(errs, checkContainerSecurity(c, pod)...)
	}
	return errs
}

// checkContainerSecurity holds a container to the restricted Pod Security
// Standard, without its exception for NET_BIND_SERVICE: an agent binds no
// privileged port. Settings that may come from the pod are taken from it
// when the container leaves them unset.
func checkContainerSecurity(c container, pod *corev1.PodSecurityContext) field.ErrorList {
	var errs field.ErrorList
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	path := c.path.Child("securityContext")
	if sc.Privileged != nil && *sc.Privileged {
		errs = append(errs, field.Forbidden(path.Child("privileged"), "agent containers are never privileged"))
	}
	switch e := sc.AllowPrivilegeEscalation; {
	case e == nil:
		// Unset means allowed, for a process that gains privileges by
		// executing a setuid binary.
		errs = append(errs, field.Required(path.Child("allowPrivilegeEscalation"), "must be set to false"))
	case *e:
		errs = append(errs, field.Forbidden(path.Child("allowPrivilegeEscalation"), "must be false: agent containers never gain privileges"))
	}
	switch {
	case sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot:
		errs = append(errs, field.Forbidden(path.Child("runAsNonRoot"), "agent containers run as a non-root user"))
	case sc.RunAsNonRoot == nil && pod.RunAsNonRoot == nil:
		errs = append(errs, field.Required(path.Child("runAsNonRoot"), "set runAsNonRoot: true on the container or the pod"))
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		errs = append(errs, field.Forbidden(path.Child("runAsUser"), "agent containers do not run as root (UID 0)"))
	}
	switch {
	case sc.SeccompProfile != nil && !seccompConfined(sc.SeccompProfile):
		errs = append(errs, field.Forbidden(path.Child("seccompProfile", "type"), "must be RuntimeDefault or Localhost"))
	case sc.SeccompProfile == nil && pod.SeccompProfile == nil:
		errs = append(errs, field.Required(path.Child("seccompProfile"), "set seccompProfile type RuntimeDefault or Localhost on the container or the pod"))
	}
	caps := sc.Capabilities
	if caps == nil || !slices.Contains(caps.Drop, "ALL") {
		errs = append(errs, field.Required(path.Child("capabilities", "drop"), "must drop ALL capabilities"))
	}
	if caps != nil {
		for j, add := range caps.Add {
			errs = append(errs, field.Forbidden(path.Child("capabilities", "add").Index(j),
				fmt.Sprintf("agent containers add no capabilities (%s)", add)))
		}
	}
	if sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
		errs = append(errs, field.Forbidden(path.Child("procMount"), "agent containers see the default, masked /proc"))
	}
	if w := sc.WindowsOptions; w != nil && w.HostProcess != nil && *w.HostProcess {
		errs = append(errs, field.Forbidden(path.Child("windowsOptions", "hostProcess"), "agent containers do not run as host processes"))
	}
	for j, p := range c.Ports {
		if p.HostPort != 0 {
			errs = append(errs, field.Forbidden(c.path.Child("ports").Index(j).Child("hostPort"), "agent containers listen on no port of the node"))
		}
	}
	errs = append(errs, checkSELinux(path.Child("seLinuxOptions"), sc.SELinuxOptions)...)
	errs = append(errs, checkAppArmorProfile(path.Child("appArmorProfile"), sc.AppArmorProfile)...)
	errs = append(errs, checkProbeHosts(c)...)
	return errs
}

func seccompConfined(p *corev1.SeccompProfile) bool {
	return p.Type == corev1.SeccompProfileTypeRuntimeDefault || p.Type == corev1.SeccompProfileTypeLocalhost
}

// Volume sources the restricted Pod Security Standard allows, less image:
// an image volume mounts content Custos did not verify.
const allowedVolumeTypes = "configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected and secret"

// checkVolumeTypes: agent pods mount only the volume types of the
// restricted Pod Security Standard, not an image's content Custos did not
// verify. A hostPath is checkPodSecurity's; a volume of a type this guard
// does not know (newer than its API) is refused too.
func checkVolumeTypes(spec *corev1.PodSpec) field.ErrorList {
	var errs field.ErrorList
	for i := range spec.Volumes {
		v := &spec.Volumes[i].VolumeSource
		if v.ConfigMap != nil || v.CSI != nil || v.DownwardAPI != nil || v.EmptyDir != nil || v.Ephemeral != nil ||
			v.PersistentVolumeClaim != nil || v.Projected != nil || v.Secret != nil {
			continue
		}
		path := podSpecPath.Child("volumes").Index(i)
		switch name := volumeSourceName(v); name {
		case "hostPath":
			// Refused as the node's filesystem.
		case "image":
			errs = append(errs, field.Forbidden(path.Child(name),
				"an image volume mounts content Custos did not verify: agent pods run only their verified image and mount only "+allowedVolumeTypes+" volumes"))
		case "":
			errs = append(errs, field.Forbidden(path,
				"no volume source the pod guard knows: agent pods mount only "+allowedVolumeTypes+" volumes"))
		default:
			errs = append(errs, field.Forbidden(path.Child(name),
				"agent pods mount only "+allowedVolumeTypes+" volumes (the restricted Pod Security Standard)"))
		}
	}
	return errs
}

// volumeSourceName is the JSON name of the source v sets, or "".
func volumeSourceName(v *corev1.VolumeSource) string {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		if f := rv.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return ""
}

// seLinuxTypes are the SELinux types the baseline Pod Security Standard
// allows besides none: those of confined containers.
var seLinuxTypes = []string{"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

// checkSELinux: no SELinux user or role, and only a confined container
// type (spc_t, say, is unconfined).
func checkSELinux(path *field.Path, opts *corev1.SELinuxOptions) field.ErrorList {
	if opts == nil {
		return nil
	}
	var errs field.ErrorList
	if opts.Type != "" && !slices.Contains(seLinuxTypes, opts.Type) {
		errs = append(errs, field.Forbidden(path.Child("type"), fmt.Sprintf(
			"%q is not a confined container type: agent containers run as %s, or leave it empty (the baseline Pod Security Standard)",
			opts.Type, strings.Join(seLinuxTypes, ", "))))
	}
	if opts.User != "" {
		errs = append(errs, field.Forbidden(path.Child("user"), "agent containers set no SELinux user (the baseline Pod Security Standard)"))
	}
	if opts.Role != "" {
		errs = append(errs, field.Forbidden(path.Child("role"), "agent containers set no SELinux role (the baseline Pod Security Standard)"))
	}
	return errs
}

// checkAppArmorProfile: a pod's or container's AppArmor profile, when set,
// confines it.
func checkAppArmorProfile(path *field.Path, p *corev1.AppArmorProfile) field.ErrorList {
	if p == nil || p.Type == corev1.AppArmorProfileTypeRuntimeDefault || p.Type == corev1.AppArmorProfileTypeLocalhost {
		return nil
	}
	return field.ErrorList{field.Forbidden(path.Child("type"), fmt.Sprintf(
		"%q is not allowed: must be RuntimeDefault or Localhost; agent containers are never unconfined", p.Type))}
}

// checkAppArmorAnnotations: the AppArmor annotations the API server still
// honours (it copies them into the fields) confine the container too.
func checkAppArmorAnnotations(annotations map[string]string) field.ErrorList {
	var keys []string
	for k := range annotations {
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var errs field.ErrorList
	for _, k := range keys {
		v := annotations[k]
		if v == "" || v == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault || strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix) {
			continue
		}
		errs = append(errs, field.Forbidden(field.NewPath("metadata", "annotations").Key(k), fmt.Sprintf(
			"%q is not allowed: must be %s or %s<profile>; agent containers are never unconfined",
			v, corev1.DeprecatedAppArmorBetaProfileRuntimeDefault, corev1.DeprecatedAppArmorBetaProfileNamePrefix)))
	}
	return errs
}

// safeSysctls are the sysctls the baseline Pod Security Standard allows
// (as of Kubernetes 1.37): namespaced, and isolated from other pods.
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ping_group_range",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_notsent_lowat",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_slow_start_after_idle",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.tcp_wmem",
}

// checkSysctls: only safe sysctls.
func checkSysctls(path *field.Path, sysctls []corev1.Sysctl) field.ErrorList {
	var errs field.ErrorList
	for i, s := range sysctls {
		if !slices.Contains(safeSysctls, s.Name) {
			errs = append(errs, field.Forbidden(path.Index(i).Child("name"), fmt.Sprintf(
				"%q is not a safe sysctl: agent pods set only those of the baseline Pod Security Standard (%s)",
				s.Name, strings.Join(safeSysctls, ", "))))
		}
	}
	return errs
}

// checkProbeHosts: a container's probes and lifecycle hooks reach the pod
// itself, not another host in the kubelet's name (baseline Pod Security
// Standard).
func checkProbeHosts(c container) field.ErrorList {
	var errs field.ErrorList
	const msg = "agent probes and lifecycle hooks reach only the pod itself: leave host empty"
	check := func(path *field.Path, http *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction) {
		if http != nil && http.Host != "" {
			errs = append(errs, field.Forbidden(path.Child("httpGet", "host"), msg))
		}
		if tcp != nil && tcp.Host != "" {
			errs = append(errs, field.Forbidden(path.Child("tcpSocket", "host"), msg))
		}
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if p.probe != nil {
			check(c.path.Child(p.name), p.probe.HTTPGet, p.probe.TCPSocket)
		}
	}
	if l := c.Lifecycle; l != nil {
		for _, h := range []struct {
			name    string
			handler *corev1.LifecycleHandler
		}{{"postStart", l.PostStart}, {"preStop", l.PreStop}} {
			if h.handler != nil {
				check(c.path.Child("lifecycle", h.name), h.handler.HTTPGet, h.handler.TCPSocket)
			}
		}
	}
	return errs
}
