package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// floorOptions are the ways a direct query can differ from ours; theFloor is the floor of the report.
type floorOptions struct {
	// gzip keeps Go's default of asking for a gzip-compressed answer (Accept-Encoding: gzip). Prometheus then
	// compresses every answer, which costs it more CPU than evaluating this query: the old floor's mistake
	// (BENCHMARKS.md, "Why the old floor was not a floor"). Our client, like reqwest without its gzip
	// feature, asks for none.
	gzip bool
	// inFlight bounds the requests in flight at once (0: unbounded), as our --max-concurrent-queries does.
	inFlight int
}

// ourDefaultInFlight is the plugin's default --max-concurrent-queries (src/engine/defaults.rs).
const ourDefaultInFlight = 16

// theFloor asks as our client does: no compressed answer, at most as many queries in flight as our default.
var theFloor = floorOptions{inFlight: ourDefaultInFlight}

// floorInstance is the query alone: a POST /api/v1/query on a keep-alive client, the body read in full and
// the status checked, nothing decoded.
type floorInstance struct {
	client *http.Client
	url    string
	slots  chan struct{}
}

func startFloor(address string, o floorOptions) (instance, error) {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  !o.gzip,
	}
	f := &floorInstance{client: &http.Client{Transport: transport}, url: address + "/api/v1/query"}
	if o.inFlight > 0 {
		f.slots = make(chan struct{}, o.inFlight)
	}
	return f, nil
}

func (f *floorInstance) Run(v int) error {
	if f.slots != nil {
		f.slots <- struct{}{}
		defer func() { <-f.slots }()
	}
	form := url.Values{
		"query": {variant(v)},
		"time":  {strconv.FormatFloat(float64(time.Now().UnixMilli())/1000, 'f', -1, 64)},
	}
	resp, err := f.client.PostForm(f.url, form)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"success"`) {
		return fmt.Errorf("http %d: %.200s", resp.StatusCode, body)
	}
	return nil
}

func (f *floorInstance) Pid() int { return 0 }
func (f *floorInstance) Stop()    { f.client.CloseIdleConnections() }

// FloorDiagnosis is the evidence for what the old floor measured: what each contender sends, and the floor's
// figures with and without each difference, on the same Prometheus.
type FloorDiagnosis struct {
	Requests []RequestSeen  `json:"requests"`
	Variants []FloorVariant `json:"variants"`
}

// RequestSeen is what one contender's query looked like on the wire.
type RequestSeen struct {
	Contender      string `json:"contender"`
	Method         string `json:"method"`
	AcceptEncoding string `json:"accept_encoding"`
	Query          string `json:"query"`
}

// FloorVariant is one floor variant at one load level (medians of the repetitions).
type FloorVariant struct {
	Name      string  `json:"name"`
	Callers   int     `json:"callers"`
	PerSecond float64 `json:"per_second"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	// PromMsPerQuery is Prometheus' own CPU (process_cpu_seconds_total) per /api/v1/query request.
	PromMsPerQuery float64 `json:"prometheus_cpu_ms_per_query"`
	// DriverCores is the driver's CPU per wall second (the floor's client runs in the driver).
	DriverCores float64 `json:"driver_cores"`
}

// floorVariants are measured in the diagnosis: the old floor, the floor, and the floor under our bound.
var floorVariants = []struct {
	name string
	opts floorOptions
}{
	{"Go default transport (Accept-Encoding: gzip), unbounded: the old floor", floorOptions{gzip: true}},
	{"no Accept-Encoding, unbounded", floorOptions{}},
	{"no Accept-Encoding, at most 16 in flight: the floor", theFloor},
}

// diagnoseFloor records what every contender sends (against a recording fake) and measures each floor
// variant at 1 caller and 30 distinct callers on the Prometheus at promURL.
func diagnoseFloor(c *config, all []contender, promURL string) (*FloorDiagnosis, error) {
	d := &FloorDiagnosis{}
	rec := startRecorder()
	defer rec.Close()
	for _, ct := range all {
		inst, err := ct.Start(rec.URL)
		if err != nil {
			return nil, err
		}
		err = inst.Run(1)
		inst.Stop()
		if err != nil {
			return nil, fmt.Errorf("%s against the recording fake: %w", ct.Name, err)
		}
		seen := rec.last()
		seen.Contender = ct.Name
		d.Requests = append(d.Requests, seen)
	}
	gzipped := RequestSeen{Contender: "floor, Go default transport"}
	if inst, err := startFloor(rec.URL, floorVariants[0].opts); err == nil {
		if err := inst.Run(1); err == nil {
			gzipped = rec.last()
			gzipped.Contender = "floor, Go default transport"
		}
		inst.Stop()
	}
	d.Requests = append(d.Requests, gzipped)
	for _, v := range floorVariants {
		for _, lv := range []level{{1, false}, {30, true}} {
			var rate, p50, p99, prom, drv []float64
			for i := 0; i < c.runs; i++ {
				inst, err := startFloor(promURL, v.opts)
				if err != nil {
					return nil, err
				}
				load(inst, lv, c.phase/5)
				before, cpu := promQueries(promURL), readCPU(0, promURL)
				l := load(inst, lv, c.phase)
				spent, queries := cpu.since(readCPU(0, promURL)), promQueries(promURL)-before
				inst.Stop()
				if l.Errors > 0 {
					return nil, fmt.Errorf("floor %s: %d errors: %s", v.name, l.Errors, l.FirstError)
				}
				rate, p50, p99 = append(rate, l.PerSecond), append(p50, l.P50Ms), append(p99, l.P99Ms)
				if queries > 0 {
					prom = append(prom, 1000*spent.Prometheus/float64(queries))
				}
				drv = append(drv, spent.Driver/spent.Wall)
			}
			d.Variants = append(d.Variants, FloorVariant{Name: v.name, Callers: lv.callers, PerSecond: median(rate),
				P50Ms: median(p50), P99Ms: median(p99), PromMsPerQuery: median(prom), DriverCores: median(drv)})
		}
	}
	return d, nil
}

// recorder is a fake Prometheus that remembers the last query request it answered.
type recorder struct {
	URL  string
	mu   sync.Mutex
	seen RequestSeen
	srv  *http.Server
}

func startRecorder() *recorder {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	r := &recorder{URL: "http://" + l.Addr().String()}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := req.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.seen = RequestSeen{Method: req.Method, AcceptEncoding: req.Header.Get("Accept-Encoding"), Query: req.Form.Get("query")}
		r.mu.Unlock()
		at := req.Form.Get("time")
		if at == "" {
			at = fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[%s,"3"]}]}}`, at)
	})}
	go r.srv.Serve(l)
	return r
}

func (r *recorder) last() RequestSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

func (r *recorder) Close() { r.srv.Close() }
