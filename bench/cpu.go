package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on every Linux this runs on).
const clockTicks = 100

// CPU is the CPU seconds each party of a measurement spent over one interval; -1 where unknown.
type CPU struct {
	Driver     float64 `json:"driver_s"`
	Plugin     float64 `json:"plugin_s"`
	Prometheus float64 `json:"prometheus_s"`
	Wall       float64 `json:"wall_s"`
}

// cpuSample is a reading of the three counters at one instant.
type cpuSample struct {
	at                         time.Time
	driver, plugin, prometheus float64
}

// readCPU reads the driver's own CPU (getrusage), the plugin's (/proc; pid 0: none) and Prometheus' own
// process_cpu_seconds_total (promURL empty: none).
func readCPU(pid int, promURL string) cpuSample {
	s := cpuSample{at: time.Now(), driver: selfCPU(), plugin: -1, prometheus: -1}
	if pid != 0 {
		s.plugin = processCPU(pid)
	}
	if promURL != "" {
		s.prometheus = promMetric(promURL, "process_cpu_seconds_total")
	}
	return s
}

// since is the CPU spent from s to now.
func (s cpuSample) since(now cpuSample) CPU {
	diff := func(a, b float64) float64 {
		if a < 0 || b < 0 {
			return -1
		}
		return b - a
	}
	return CPU{
		Driver:     now.driver - s.driver,
		Plugin:     diff(s.plugin, now.plugin),
		Prometheus: diff(s.prometheus, now.prometheus),
		Wall:       now.at.Sub(s.at).Seconds(),
	}
}

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// processCPU is utime + stime of pid in seconds, -1 if unreadable.
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces: count fields after its closing parenthesis.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return -1
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return (utime + stime) / clockTicks
}

// promMetric is the sum of every sample of an unlabelled or labelled metric family named name on base's
// /metrics, -1 if unreadable.
func promMetric(base, name string) float64 {
	return promMetricWhere(base, name, "")
}

// promMetricWhere sums the samples of name whose label set contains want (empty: every sample).
func promMetricWhere(base, name, want string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	total, found := 0.0, false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') || !strings.Contains(rest, want) {
			continue
		}
		fields := strings.Fields(line)
		if v, err := strconv.ParseFloat(fields[len(fields)-1], 64); err == nil {
			total, found = total+v, true
		}
	}
	if !found {
		return -1
	}
	return total
}
