package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is a server started as a child process for a comparison.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	// Log collects the process's stderr and stdout.
	Log string
}

// PID returns the process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// StartProc starts argv with its output in logPath.
func StartProc(name, logPath string, argv ...string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, argv[0], err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	return &Proc{Name: name, Cmd: cmd, Log: logPath}, nil
}

// Stop ends the process group (the process and any workers it forked) and
// waits for the process to exit.
func (p *Proc) Stop() {
	if p == nil || p.Cmd.Process == nil {
		return
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pgid, 0) != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	// Reap stragglers of the group (nginx workers).
	time.Sleep(50 * time.Millisecond)
}

// WaitHTTP polls url until it answers 2xx or timeout passes.
func WaitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			last = fmt.Errorf("status %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v", url, timeout, last)
}

// WaitTCP polls addr until it accepts a connection.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not accepting after %v: %v", addr, timeout, last)
}

// FreePort returns a free loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// NginxConfig is a generated nginx configuration: a fixed 200 on / and a
// rate-limited 200 on /limited (one bucket for every client: the key is
// the Host header, the same for all of them).
type NginxConfig struct {
	Port    int
	Workers int
	// LimitRate is /limited's requests/s (limit_req, 429 beyond; 0: 1000).
	LimitRate int
}

// WriteNginx writes nginx.conf into dir and returns its path.
func WriteNginx(dir string, c NginxConfig) (string, error) {
	if c.Workers < 1 {
		c.Workers = 1
	}
	if c.LimitRate < 1 {
		c.LimitRate = 1000
	}
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
worker_rlimit_nofile 20000;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log crit;
events {
    worker_connections 65535;
    multi_accept on;
}
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    default_type application/json;
    limit_req_zone $host zone=all:1m rate=%[3]dr/s;
    limit_req_status 429;
    server {
        listen 127.0.0.1:%[4]d backlog=4096;
        location / { return 200 '{"status":"ok"}'; }
        location = /limited {
            # not "return": it runs before limit_req and would bypass it
            limit_req zone=all burst=%[5]d nodelay;
            alias %[2]s/ok.json;
        }
    }
}
`, c.Workers, dir, c.LimitRate, c.Port, c.LimitRate/10)
	if err := os.WriteFile(filepath.Join(dir, "ok.json"), []byte(`{"status":"ok"}`), 0o644); err != nil {
		return "", fmt.Errorf("write nginx body file: %w", err)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return "", fmt.Errorf("write nginx config: %w", err)
	}
	return path, nil
}

// NginxBinary returns the nginx executable, or an error saying how to
// install it.
func NginxBinary() (string, error) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", errors.New("nginx not found (apt-get install -y nginx)")
}

// StartNginx writes a config in dir and starts nginx in the foreground.
func StartNginx(dir string, c NginxConfig) (*Proc, string, error) {
	bin, err := NginxBinary()
	if err != nil {
		return nil, "", err
	}
	conf, err := WriteNginx(dir, c)
	if err != nil {
		return nil, "", err
	}
	p, err := StartProc("nginx", filepath.Join(dir, "nginx.log"), bin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	if err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", c.Port)
	if err := WaitHTTP(url, 10*time.Second); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("nginx: %w", err)
	}
	return p, url, nil
}

// ServeNetHTTP runs a Go net/http server answering 200 {"status":"ok"} on
// every path until ctx ends: the standard library's peer.
func ServeNetHTTP(ctx context.Context, addr string) error {
	if _, err := RaiseNoFile(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("net/http peer listen %s: %w", addr, err)
	}
	body := []byte(`{"status":"ok"}`)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("net/http peer: %w", err)
	}
	return nil
}

// FloodgateArgs returns `serve` arguments for a floodgate on the given
// ports; extra flags are appended. inMemory adds --in-memory.
func FloodgateArgs(bin string, kafkaPort, httpPort int, inMemory bool, extra ...string) []string {
	args := []string{bin, "serve", "--kafka-listen", fmt.Sprintf("127.0.0.1:%d", kafkaPort),
		"--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPort), "--log-level", "warn"}
	if inMemory {
		args = append(args, "--in-memory")
	}
	return append(args, extra...)
}

// HasFlag reports whether `bin serve --help` mentions flag.
func HasFlag(bin, flag string) bool {
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	return strings.Contains(string(out), flag)
}
